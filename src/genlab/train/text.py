"""``genlab train text``: corpus → tokenizer → n-gram counts or a trained network, with held-out figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from genlab.checkpoint import save_model
from genlab.data.text import TokenBatches, load_text, split_text
from genlab.data.tokenizers import load_tokenizer, train_tokenizer
from genlab.errors import GenlabError
from genlab.eval.text import evaluate_text, mean_block_loss
from genlab.runtime import best_device, seed_everything
from genlab.train import distributed
from genlab.train.runs import plan_run
from genlab.train.trainer import METRICS_FILE, Trainer


def train_text(
    *,
    data: str | None,
    out: str | Path,
    family: str = "gpt",
    preset: str = "tiny",
    overrides: dict[str, Any] | None = None,
    tokenizer: str = "char",
    vocab_size: int = 1024,
    val_fraction: float = 0.1,
    resume: bool = False,
    device: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train (or fit, for n-grams) a language model on ``data`` and save it as a checkpoint in ``out``.

    Returns a summary with the held-out figures of :func:`genlab.eval.text.evaluate_text`.
    ``overrides`` may set any model or trainer field (``steps``, ``seed``, ``time_budget`` included).
    """
    out = Path(out)
    plan = plan_run(out, modality="text", family=family, preset=preset, overrides=dict(overrides or {}), resume=resume)
    cls, mcfg, tcfg = plan.cls, plan.model_config, plan.train_config
    if resume:
        data = data or plan.saved.get("data")
        val_fraction = plan.saved.get("val_fraction", val_fraction)
    if data is None:
        raise GenlabError("--data is required: a .txt file, a folder, a .jsonl file, or 'kjv'")

    text = load_text(data)
    train_part, val_part = split_text(text, val_fraction)
    tok = load_tokenizer(out) if resume else train_tokenizer(tokenizer, train_part, vocab_size)
    mcfg.vocab_size = tok.vocab_size
    ids = torch.tensor(tok.encode(train_part), dtype=torch.long)
    val_ids = torch.tensor(tok.encode(val_part), dtype=torch.long) if val_part else torch.zeros(0, dtype=torch.long)
    run_info = {"data": str(data), "val_fraction": val_fraction, "tokenizer": tok.kind}
    say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr))
    say(
        f"data: {len(text):,} characters, {ids.numel():,} training tokens, {val_ids.numel():,} held out; "
        f"vocabulary {tok.vocab_size} ({tok.kind})"
    )

    if cls.trains_by_counting:
        model = cls(mcfg, tok)
        model.fit(ids.numpy())
        save_model(model, out, run=run_info | {"counts": int(ids.numel())})
        stopped, steps = "done", 0
    else:
        info, dev = distributed.setup(best_device(device))
        seed_everything(tcfg.seed + info.rank)
        model = cls(mcfg, tok)
        say(f"model: {cls.family}, {model.num_params() / 1e6:.2f} M parameters, device {dev}")
        block = mcfg.block_size
        batches = TokenBatches(ids, block_size=block, batch_size=tcfg.batch_size, seed=tcfg.seed, rank=info.rank)
        evaluate = None
        if val_ids.numel() >= block + 2:

            def evaluate(m: Any) -> dict[str, Any]:
                return {
                    "val_loss": mean_block_loss(
                        m, val_ids, block_size=block, batches=tcfg.eval_batches, batch_size=tcfg.batch_size
                    )
                }

        trainer = Trainer(
            model,
            tcfg,
            batches=batches,
            out_dir=out,
            evaluate=evaluate,
            items_per_batch=tcfg.batch_size * block,
            unit="tok",
            run=run_info,
            device=dev,
            dist=info,
            quiet=quiet,
        )
        result = trainer.fit(resume=resume)
        distributed.teardown(info)
        if not info.is_main:
            return {"stopped": result.stopped, "step": result.step}
        stopped, steps = result.stopped, result.step
        if stopped == "interrupted":
            return {"stopped": stopped, "step": steps, "out": str(out)}
    summary: dict[str, Any] = {"out": str(out), "family": cls.family, "stopped": stopped, "step": steps}
    if val_part and len(val_ids) >= 2:
        summary["held_out"] = evaluate_text(model, val_part)
        with open(out / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": steps, "held_out": summary["held_out"]}) + "\n")
    return summary
