"""``genlab demo``: run every shipped default model end to end and write an HTML report.

Each section is a function ``(out_dir, seed) -> html``; later capabilities append theirs to SECTIONS.
"""

from __future__ import annotations

import html
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

import genlab
from genlab.edit.demo import edit_section
from genlab.io import write_text


def text_section(out_dir: Path, seed: int) -> str:
    """Samples of the default language model, its speed, and its bits/char on held-out verses."""
    from genlab.data.text import load_text, split_text
    from genlab.eval.text import evaluate_text
    from genlab.runtime import make_generator
    from genlab.sampling.text import generate

    model = genlab.load(task="text")
    held_out = split_text(load_text("kjv"))[1][-20_000:]
    figures = evaluate_text(model, held_out)
    rows = []
    for i, prompt in enumerate(["In the beginning", "And the LORD said unto Moses,", "Blessed are the"]):
        g = generate(model, prompt, max_tokens=240, temperature=0.8, generator=make_generator(seed + i))
        rows.append(
            f"<div class='sample'><b>{html.escape(prompt)}</b>{html.escape(g.texts[0])}"
            f"<div class='meta'>{g.new_tokens} tokens in {g.seconds:.2f} s ({g.tokens_per_s:,.0f} tokens/s), "
            f"temperature 0.8, seed {seed + i}</div></div>"
        )
    c = model.config
    return (
        f"<h2>Text: a GPT trained on the King James Bible</h2>"
        f"<p>{model.family}, {c.n_layer} layers, {c.n_head} heads, width {c.n_embd}, context {c.block_size} "
        f"characters, {model.num_params() / 1e6:.2f} M parameters. On the last 20,000 held-out characters "
        f"(Revelation, never seen in training): {figures['bits_per_char']:.3f} bits/char "
        f"({figures['nats_per_char']:.3f} nats/char). "
        f'Try: <code>genlab generate text --prompt "In the beginning" --seed 1</code></p>' + "".join(rows)
    )


SECTIONS: list[tuple[str, Callable[[Path, int], str]]] = [("text", text_section)]
SECTIONS.append(("edit", edit_section))

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>genlab demo</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
.sample {{ white-space: pre-wrap; font-family: ui-monospace, monospace; background: #f6f6f4; padding: .8rem;
          margin: .8rem 0; border-radius: 6px; }}
.meta {{ color: #777; font-size: .8rem; margin-top: .4rem; font-family: system-ui, sans-serif; }}
code {{ background: #eee; padding: 0 .3rem; }}
</style></head><body>
<h1>genlab demo</h1>
<p>Every shipped default model, run on this machine ({machine}, torch {torch}, genlab {version}) in {seconds:.1f} s.</p>
{sections}
</body></html>
"""


def run_demo(out_dir: Path, seed: int = 0) -> Path:
    """Run every section and write ``out_dir/index.html``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    parts = [fn(out_dir, seed) for _, fn in SECTIONS]
    page = PAGE.format(
        machine=html.escape(f"{platform.machine()}, {torch.get_num_threads()} threads"),
        torch=torch.__version__,
        version=genlab.__version__,
        seconds=time.perf_counter() - start,
        sections="\n".join(parts),
    )
    index = out_dir / "index.html"
    write_text(index, page)
    return index
