"""The trainer's settings (``--set`` reaches every field) and its learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

from genlab.config import COUNT, FINITE, NONNEGATIVE, POSITIVE, PROBABILITY, Range, check_ranges
from genlab.errors import GenlabError


@dataclass
class TrainConfig:
    steps: int = 2000  # optimizer steps
    batch_size: int = 12  # examples per micro-batch (per process under torchrun)
    accumulate: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3
    min_lr: float = -1.0  # end of the cosine; < 0 means lr / 10
    warmup: int = 100  # steps of linear warmup
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max global gradient norm; 0 disables
    ema: float = 0.0  # EMA decay (e.g. 0.999); 0 disables
    eval_every: int = 250
    eval_batches: int = 20
    sample_every: int = 0  # write samples every N steps (families that draw images); 0 disables
    log_every: int = 10
    ckpt_every: int = 500
    time_budget: float = 0.0  # seconds; > 0 stops then and shapes the cosine by elapsed time
    precision: str = "auto"  # auto | fp32 | bf16 | fp16  (auto: bf16/fp16 on CUDA, fp32 elsewhere)
    compile: str = "auto"  # auto | on | off  (auto: on with CUDA)
    seed: int = 0

    def validate(self) -> None:
        check_ranges(
            self,
            "train",
            {
                "steps": Range(1, COUNT.hi),
                "batch_size": Range(1, 1_000_000),
                "accumulate": Range(1, 1_000_000),
                "warmup": COUNT,
                "eval_every": Range(1, COUNT.hi),
                "eval_batches": Range(1, 1_000_000),
                "sample_every": COUNT,  # 0 disables
                "log_every": Range(1, COUNT.hi),
                "ckpt_every": Range(1, COUNT.hi),
                "seed": COUNT,
                "lr": POSITIVE,
                "min_lr": FINITE,  # < 0 means lr / 10
                "weight_decay": NONNEGATIVE,
                "beta1": PROBABILITY,
                "beta2": PROBABILITY,
                "grad_clip": NONNEGATIVE,  # 0 disables
                "ema": PROBABILITY,  # 0 disables
                "time_budget": NONNEGATIVE,  # 0: no budget
            },
        )
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise GenlabError(f"precision={self.precision!r}: choose auto, fp32, bf16 or fp16")
        if self.compile not in ("auto", "on", "off"):
            raise GenlabError(f"compile={self.compile!r}: choose auto, on or off")

    @property
    def final_lr(self) -> float:
        return self.min_lr if self.min_lr >= 0 else self.lr / 10


def lr_at(cfg: TrainConfig, step: int, progress: float) -> float:
    """Learning rate at ``step``: linear warmup, then cosine from ``lr`` to ``final_lr`` as
    ``progress`` (fraction of the step or time budget used) goes to 1."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / (cfg.warmup + 1)
    w = min(cfg.warmup / cfg.steps, 0.5)
    q = min(max((progress - w) / (1.0 - w), 0.0), 1.0)
    return cfg.final_lr + 0.5 * (1.0 + math.cos(math.pi * q)) * (cfg.lr - cfg.final_lr)
