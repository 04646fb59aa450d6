"""A model family written the way a new family is added to genlab: this one file and one registry line.

Formulation: p(x) = Π_i N(x_i; μ_i, σ_i²), every pixel independent (the baseline an autoregressive pixel model
beats). Representation: a mean and a log-standard-deviation per pixel. Objective: the negative log-likelihood in
nats per dimension. Inference: independent Gaussian draws; ``log_prob`` is exact.

tests/test_families.py registers it (``FAMILIES["toy"] = "tests.toy_family:PixelGaussian"``) and drives it through
``genlab train``, ``generate`` and ``eval`` without any other file of genlab knowing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.models.image import ImageModel, write_grid


@dataclass
class PixelGaussianConfig:
    image_size: int = 8
    channels: int = 1  # set from the data
    min_log_std: float = -4.0

    def validate(self) -> None:
        if self.image_size < 1 or self.channels < 1:
            raise GenlabError("toy: image_size and channels must be positive")


class PixelGaussian(ImageModel):
    family = "toy"
    modality = "image"
    Config = PixelGaussianConfig
    presets = {"tiny": dict(steps=30, batch_size=64, lr=0.05, warmup=0, eval_every=10, sample_every=10)}

    def __init__(self, config: PixelGaussianConfig) -> None:
        super().__init__(config)
        config.validate()
        shape = (config.channels, config.image_size, config.image_size)
        self.mean = nn.Parameter(torch.zeros(shape))
        self.log_std = nn.Parameter(torch.zeros(shape))

    def log_prob(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        """log p(x) in nats per image, for images ``B×C×H×W`` in [-1, 1]."""
        log_std = self.log_std.clamp(min=self.config.min_log_std)
        z = (x - self.mean) / log_std.exp()
        return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)

    def loss(self, batch: Any) -> torch.Tensor:
        x = batch[0]
        return -self.log_prob(x).mean() / x[0].numel()

    def sample(self, n: int, cond: Any = None, *, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn((n, *self.mean.shape), generator=generator, device=self.device)
        x = self.mean + self.log_std.clamp(min=self.config.min_log_std).exp() * noise
        return ((x + 1) / 2).clamp(0, 1)

    def evaluate(self, val: Any, *, batches: int = 20, batch_size: int = 64) -> dict[str, float]:
        x = val.images.to(self.device)
        return {"val_nats_per_dim": float(-self.log_prob(x).mean() / x[0].numel())}

    def preview(self, path: Path, val: Any, seed: int) -> Path:
        g = torch.Generator(device=self.device).manual_seed(seed)
        return write_grid(path, self.sample(16, generator=g), 4, self.config.image_size)
