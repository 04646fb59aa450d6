"""``genlab demo``: run every shipped default model end to end and write an HTML report.

Each section is a function ``(out_dir, seed) -> html``; later capabilities append theirs to SECTIONS. The model
sections (text, image, text-to-image) live here; chat's in :mod:`genlab.demo.chat`, editing's in
:mod:`genlab.demo.edit`, segmentation's in :mod:`genlab.demo.segment`, the image families' in
:mod:`genlab.demo.families`.
"""

from __future__ import annotations

import html
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from genlab.checkpoint import load_model
from genlab.demo.chat import chat_section
from genlab.demo.edit import edit_section
from genlab.demo.families import families_section
from genlab.demo.segment import segment_section
from genlab.io import write_text
from genlab.version import __version__


def cut_at_line_end(text: str) -> str:
    """``text`` up to its last line end (the verse's text, without the newline) or, with none, its last sentence
    end (. ! ? included); unchanged when it has neither."""
    if "\n" in text.rstrip("\n"):
        return text.rstrip("\n").rsplit("\n", 1)[0]
    ends = [text.rfind(c) for c in ".!?"]
    return text[: max(ends) + 1] if max(ends) >= 0 else text


def text_section(out_dir: Path, seed: int) -> str:
    """Samples of the default language model, its speed, and its bits/char on held-out verses."""
    from genlab.data.text import load_text, split_text
    from genlab.eval.text import evaluate_text
    from genlab.runtime import make_generator
    from genlab.sampling.text import generate

    model = load_model(task="text")
    held_out = split_text(load_text("kjv"))[1][-20_000:]
    figures = evaluate_text(model, held_out)
    generate(model, "In", max_tokens=8, generator=make_generator(seed))  # warm-up: the timings below are warm
    rows = []
    for i, prompt in enumerate(["In the beginning", "And the LORD said unto Moses,", "Blessed are the"]):
        g = generate(model, prompt, max_tokens=240, temperature=0.8, generator=make_generator(seed + i))
        rows.append(
            f"<div class='sample'><b>{html.escape(prompt)}</b>{html.escape(cut_at_line_end(g.texts[0]))}"
            f"<div class='meta'>{g.new_tokens} tokens in {g.seconds:.2f} s ({g.tokens_per_s:,.0f} tokens/s, warm), "
            f"temperature 0.8, seed {seed + i}; shown up to the last line or sentence end</div></div>"
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


GUIDANCE_CLASSES = (1, 4, 9)  # the digits whose samples guidance changes most (seed 0: mean |Δ| of 0.06-0.11)
GUIDANCE_W = (0, 3, 10)


def guidance_rows(model: torch.nn.Module, seed: int) -> dict[float, torch.Tensor]:
    """The guidance sweep of the image section: w → four samples of each of GUIDANCE_CLASSES, same noise."""
    from genlab.runtime import make_generator

    classes = torch.tensor(GUIDANCE_CLASSES).repeat_interleave(4)
    return {
        w: model.sample(len(classes), classes, generator=make_generator(seed), steps=50, guidance=w)  # type: ignore[operator]
        for w in GUIDANCE_W
    }


def image_section(out_dir: Path, seed: int) -> str:
    """The default digits diffusion model: a grid per class, DDIM vs DDPM, a guidance sweep, a morph."""
    import time

    from genlab.data.images import image_grid, write_image
    from genlab.runtime import make_generator

    model = load_model(task="image")
    scale = max(1, 48 // model.config.image_size)

    def draw(name: str, images: torch.Tensor, nrow: int) -> str:
        write_image(out_dir / name, image_grid(images.cpu().numpy(), nrow, scale=scale))
        return f"<img class='px' src='{name}' alt='{name}'>"

    classes = torch.arange(10).repeat_interleave(8)
    model.sample(10, torch.arange(10), generator=make_generator(seed), steps=2)  # warm-up: the timings are warm
    start = time.perf_counter()
    grid = draw("digits_ddim.png", model.sample(80, classes, generator=make_generator(seed), steps=50, guidance=1.0), 8)
    ddim_s = time.perf_counter() - start
    ten = torch.arange(10)
    start = time.perf_counter()
    ddpm = draw(
        "digits_ddpm.png", model.sample(10, ten, generator=make_generator(seed), sampler="ddpm", steps=1000), 10
    )
    ddpm_s = time.perf_counter() - start
    ddim = draw("digits_ddim_row.png", model.sample(10, ten, generator=make_generator(seed), steps=50), 10)
    dpmpp = draw(
        "digits_dpmpp.png", model.sample(10, ten, generator=make_generator(seed), sampler="dpmpp", steps=20), 10
    )
    sweep = "".join(
        f"<tr><td>w = {w}</td><td>{draw(f'digits_w{w}.png', row, len(row))}</td></tr>"
        for w, row in guidance_rows(model, seed).items()
    )
    morph_images = model.interpolate(8, through="noise", classes=(1, 7), generator=make_generator(seed), steps=50)
    morph = draw("digits_morph.png", morph_images, 8)
    c = model.config
    return (
        f"<h2>Images: class-conditional diffusion on handwritten digits</h2>"
        f"<p>A DDPM UNet ({model.num_params() / 1e6:.2f} M parameters, {c.image_size}×{c.image_size}, {c.timesteps} "
        f"noise levels) trained by genlab on scikit-learn's digits. Try: "
        f"<code>genlab generate image --class 7 --n 16 --guidance 3 --out sevens.png</code></p>"
        f"<h3>Eight samples per class (DDIM, 50 steps, guidance w = 1; {ddim_s:.1f} s for 80 images)</h3>{grid}"
        f"<h3>Samplers, same classes 0-9</h3><table>"
        f"<tr><td>DDPM, 1,000 steps ({ddpm_s:.1f} s)</td><td>{ddpm}</td></tr>"
        f"<tr><td>DDIM, 50 steps</td><td>{ddim}</td></tr><tr><td>DPM-Solver++(2M), 20 steps</td><td>{dpmpp}</td></tr>"
        f"</table><h3>Classifier-free guidance: ε̃ = (1 + w) ε(x, y) − w ε(x, ∅)</h3>"
        f"<p>Classes {', '.join(map(str, GUIDANCE_CLASSES))}, four samples each (the same noise in every row), at "
        f"w = {', '.join(map(str, GUIDANCE_W))}: the strokes shift and harden as w grows; at "
        f"w = {GUIDANCE_W[-1]} some nines lose their loop (guidance overshoots). This model follows its class well "
        f"even at w = 0, so the change is modest.</p><table>{sweep}</table>"
        f"<h3>From 1 to 7: slerp between two noises, class embedding mixed</h3>{morph}"
    )


def text2image_section(out_dir: Path, seed: int) -> str:
    """The shipped text-to-image pipeline: prompts, a guidance sweep, a negative prompt, img2img, inpainting, CLIP."""
    from genlab.data.image_data import load_shapes
    from genlab.data.images import image_grid, write_image
    from genlab.runtime import make_generator

    model = load_model(task="text2image")
    clip = load_model(task="clip")
    scale = max(1, 64 // model.image_size)

    def draw(name: str, images: torch.Tensor, nrow: int) -> str:
        write_image(out_dir / name, image_grid(images.cpu().numpy(), nrow, scale=scale))
        return f"<img class='px' src='{name}' alt='{name}'>"

    def sample(prompt: str, n: int = 4, **kw: object) -> torch.Tensor:
        return model.sample(n, prompt, generator=make_generator(seed), sampler="dpmpp", steps=20, **kw)

    prompts = [
        "a large red circle in the center",
        "a small blue square at the top left",
        "a medium yellow star at the bottom right",
        "a large green triangle on a striped background",
        "a small purple cross at the left",
        "a medium orange diamond at the top",
    ]
    rows = "".join(
        f"<tr><td>{html.escape(p)}</td><td>{draw(f't2i_{i}.png', sample(p, guidance=3.0), 4)}</td></tr>"
        for i, p in enumerate(prompts)
    )
    sweep = draw(
        "t2i_sweep.png",
        torch.cat([sample("a small blue star at the top right", 1, guidance=w) for w in (0, 1, 3, 5, 7)]),
        5,
    )
    negative = draw("t2i_negative.png", sample("a large circle in the center", guidance=3.0, negative_prompt="red"), 4)
    scene = (load_shapes(model.image_size, count=1, seed=7).images + 1) / 2
    edited = model.img2img(
        scene.repeat(3, 1, 1, 1),
        "a large blue star in the center",
        strength=0.7,
        generator=make_generator(seed),
        guidance=3.0,
    )
    hole = torch.zeros(1, 1, model.image_size, model.image_size)
    q = model.image_size // 4
    hole[..., q : 3 * q, q : 3 * q] = 1
    filled = model.inpaint(
        scene, hole, "a small green square in the center", generator=make_generator(seed), guidance=3.0
    )
    edits = draw("t2i_edits.png", torch.cat([scene, edited, scene * (1 - hole), filled]), 6)
    held = load_shapes(model.image_size, count=200, seed=1)
    probs = clip.zero_shot((held.images + 1) / 2, [f"a {k}" for k in held.class_names])
    zero_shot = (probs.argmax(-1) == held.labels).float().mean().item()
    return (
        "<h2>Text to image: latent diffusion with cross-attention, in the Stable Diffusion style</h2>"
        f"<p>A perceptual autoencoder ({model.image_size}×{model.image_size} images to "
        f"{model.latent_channels}×{model.latent_size}×{model.latent_size} latents), a CLIP text encoder and a UNet "
        f"that reads the prompt through cross-attention, all trained by genlab on captioned shapes. DPM-Solver++, 20 "
        f'steps, guidance w = 3. Try: <code>genlab generate image --prompt "a large blue triangle at the bottom '
        f'right" --guidance 5 --out t.png</code></p><table>{rows}</table>'
        f'<h3>Guidance w = 0, 1, 3, 5, 7 for "a small blue star at the top right"</h3>{sweep}'
        f'<h3>"a large circle in the center", negative prompt "red"</h3>{negative}'
        f'<h3>Editing: a scene; img2img to "a large blue star in the center" (strength 0.7, three seeds); the '
        f'scene with a hole; the hole filled with "a small green square in the center"</h3>{edits}'
        f"<p>CLIP zero-shot: {zero_shot:.0%} of 200 held-out shapes named right among "
        f"{', '.join(held.class_names)} (chance {1 / len(held.class_names):.0%}).</p>"
    )


SECTIONS: list[tuple[str, Callable[[Path, int], str]]] = [
    ("text", text_section),
    ("chat", chat_section),
    ("image", image_section),
    ("image families", families_section),
    ("text2image", text2image_section),
    ("edit", edit_section),
    ("segment", segment_section),
]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>genlab demo</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
.sample {{ white-space: pre-wrap; font-family: ui-monospace, monospace; background: #f6f6f4; padding: .8rem;
          margin: .8rem 0; border-radius: 6px; }}
.meta {{ color: #777; font-size: .8rem; margin-top: .4rem; font-family: system-ui, sans-serif; }}
code {{ background: #eee; padding: 0 .3rem; }}
img.px {{ image-rendering: pixelated; }}
td {{ padding: .2rem .6rem; vertical-align: middle; }}
</style></head><body>
<h1>genlab demo</h1>
<p>Every shipped default model, run on this machine ({machine}, torch {torch}, genlab {version}) in {seconds:.1f} s.</p>
{sections}
</body></html>
"""


def run_demo(out_dir: Path, seed: int = 0, progress: Callable[[str], None] | None = None) -> Path:
    """Run every section and write ``out_dir/index.html``; returns its path. ``progress`` gets one line as each
    section starts and one as it ends, with the time it took and the time since the demo began."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    say = progress or (lambda line: None)
    parts = []
    for i, (name, fn) in enumerate(SECTIONS, 1):
        began = time.perf_counter()
        say(f"demo [{i}/{len(SECTIONS)}] {name}: started at {began - start:.1f} s")
        parts.append(fn(out_dir, seed))
        now = time.perf_counter()
        say(f"demo [{i}/{len(SECTIONS)}] {name}: done in {now - began:.1f} s ({now - start:.1f} s in all)")
    page = PAGE.format(
        machine=html.escape(f"{platform.machine()}, {torch.get_num_threads()} threads"),
        torch=torch.__version__,
        version=__version__,
        seconds=time.perf_counter() - start,
        sections="\n".join(parts),
    )
    index = out_dir / "index.html"
    write_text(index, page)
    return index
