"""Benchmark: language models on the King James Bible (bundled), one JSON object on stdout.

    python bench/text.py                 # ~15 minutes on 2 CPU cores
    python bench/text.py --budget 60     # shorter equal-time comparison

Measures, on the same corpus and 90/10 split (held-out = the last 10%, scored with full context):
  * n-gram held-out nats/char: interpolated Witten–Bell and modified Kneser–Ney, orders 5 and 8;
  * LSTM and GPT (preset small) after an equal CPU time budget;
  * nanoGPT's CPU configuration (= preset tiny: 4 layers, 4 heads, 128 wide, block 64, batch 12, lr 1e-3,
    2,000 iterations, no dropout): ms per iteration and its validation loss estimate (nanoGPT's method);
  * training tokens/s of GPT tiny and small;
  * generation tokens/s with and without the KV cache, at a 256-token context and growing from 1 to 256.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from genlab.data.text import load_text, split_text
from genlab.data.tokenizers import CharTokenizer
from genlab.eval.text import evaluate_text
from genlab.models.gpt import GPT, GPTConfig
from genlab.models.ngram import NGramConfig, NGramLM
from genlab.sampling.text import generate
from genlab.train.run import train as train_run


def ngram_figures(train: str, val: str) -> dict:
    tok = CharTokenizer.train(train)
    ids = tok.encode(train)
    out = {}
    for smoothing in ("witten-bell", "kneser-ney"):
        for order in (5, 8):
            model = NGramLM(NGramConfig(vocab_size=tok.vocab_size, order=order, smoothing=smoothing), tok)
            start = time.perf_counter()
            model.fit(ids)
            fit_s = time.perf_counter() - start
            out[f"{smoothing}_{order}"] = {
                "nats_per_char": round(evaluate_text(model, val)["nats_per_char"], 4),
                "fit_s": round(fit_s, 2),
            }
    return out


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").open()]


def train_speed(root: Path, preset: str, steps: int = 60) -> dict:
    run = root / f"speed-{preset}"
    train_run(
        data="kjv",
        out=run,
        family="gpt",
        preset=preset,
        quiet=True,
        overrides={"steps": steps, "log_every": 20, "eval_every": 10**6, "ckpt_every": 10**6},
    )
    rates = [r["tok_per_s"] for r in metrics(run) if "tok_per_s" in r][1:]  # skip the first window (warm-up)
    cfg = json.loads((run / "config.json").read_text())
    tokens_per_step = cfg["run"]["train"]["batch_size"] * cfg["config"]["block_size"]
    median = sorted(rates)[len(rates) // 2]
    return {"tokens_per_s": round(median), "ms_per_step": round(1000 * tokens_per_step / median, 1)}


def generation_speed(vocab_chars: int) -> dict:
    """Tokens/s of a 4-layer, 192-wide GPT with and without the KV cache: with a 256-token context (a 256-token
    prompt, then 64 new tokens, window 512), and growing from 1 to 256 tokens (window 256). Prefill included."""
    torch.manual_seed(0)
    chars = [chr(32 + i) for i in range(vocab_chars)]
    tok = CharTokenizer(chars)
    out = {}
    for name, block, prompt, new in (
        ("context_256", 512, "".join(chars[i % vocab_chars] for i in range(256)), 64),
        ("growing_to_256", 256, chars[0], 255),
    ):
        model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=block, n_layer=4, n_head=4, n_embd=192), tok)
        model.eval()
        rates = {}
        for cache in (True, False):
            generate(model, prompt, max_tokens=10, cache=cache)  # warm-up
            g = generate(model, prompt, max_tokens=new, cache=cache, generator=torch.Generator().manual_seed(0))
            rates["cached" if cache else "uncached"] = round(g.tokens_per_s, 1)
        rates["speedup"] = round(rates["cached"] / rates["uncached"], 2)
        out[name] = rates
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=300, help="seconds of training for the LSTM and the GPT")
    parser.add_argument("--nanogpt-steps", type=int, default=2000)
    args = parser.parse_args()
    text = load_text("kjv")
    train, val = split_text(text)
    result: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "corpus": {"name": "kjv", "chars": len(text), "train_chars": len(train), "held_out_chars": len(val)},
    }
    result["ngram"] = ngram_figures(train, val)
    print(json.dumps(result["ngram"]), file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        result["train_speed"] = {p: train_speed(root, p) for p in ("tiny", "small")}
        print(json.dumps(result["train_speed"]), file=sys.stderr)
        equal = {}
        for family in ("lstm", "gpt"):
            s = train_run(
                data="kjv",
                out=root / f"budget-{family}",
                family=family,
                preset="small",
                quiet=True,
                overrides={"steps": 10**9, "time_budget": args.budget, "eval_every": 10**6},
            )
            equal[family] = {"nats_per_char": round(s["held_out"]["nats_per_char"], 4), "steps": s["step"]}
        equal["budget_s"] = args.budget
        result["equal_time"] = equal
        print(json.dumps(equal), file=sys.stderr)
        start = time.perf_counter()
        s = train_run(
            data="kjv",
            out=root / "nanogpt-cpu",
            family="gpt",
            preset="tiny",
            quiet=True,
            overrides={"steps": args.nanogpt_steps, "eval_every": args.nanogpt_steps},
        )
        wall = time.perf_counter() - start
        recs = metrics(root / "nanogpt-cpu")
        train_s = max(r["elapsed_s"] for r in recs if "elapsed_s" in r)
        result["nanogpt_cpu_config"] = {
            "steps": args.nanogpt_steps,
            "ms_per_step": round(1000 * train_s / args.nanogpt_steps, 1),
            "val_loss_estimate": round([r["val_loss"] for r in recs if "val_loss" in r][-1], 4),
            "held_out_nats_per_char": round(s["held_out"]["nats_per_char"], 4),
            "wall_s": round(wall, 1),
            "reference": {"nanogpt_val_loss_kjv": 1.648, "nanogpt_ms_per_iter_shakespeare": 40},
        }
    result["generation_tokens_per_s"] = generation_speed(len(set(train)))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
