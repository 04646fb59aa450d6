"""A multi-head classifier of the attributes a ``shapes`` caption names: kind, colour, size and position.

It judges text-to-image samples: a sample is faithful to "a large blue triangle at the bottom right" when the
classifier, trained on real ``shapes`` images (one object each), reads those four attributes back from it.
Representation: a convolutional trunk and one linear head per attribute. Objective: the sum of the heads'
cross-entropies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import (
    DEPTH,
    IMAGE_CHANNELS,
    IMAGE_SIZE,
    MULTIPLIER,
    PROBABILITY,
    WIDTH,
    check_int_list,
    check_ranges,
)
from genlab.data.shapes import ATTRIBUTES
from genlab.errors import GenlabError
from genlab.models.diffusion import parse_ints
from genlab.models.image import EVAL_IMAGES, ImageModel
from genlab.nn.convnet import ConvTrunk


@dataclass
class AttributesConfig:
    image_size: int = 32
    channels: int = 3
    base_channels: int = 32
    channel_mult: str = "1,2,2"
    num_res_blocks: int = 1
    dropout: float = 0.1

    def validate(self) -> None:
        check_ranges(
            self,
            "attributes",
            {
                "image_size": IMAGE_SIZE,
                "channels": IMAGE_CHANNELS,
                "base_channels": WIDTH,
                "num_res_blocks": DEPTH,
                "dropout": PROBABILITY,
            },
        )
        check_int_list(parse_ints(self.channel_mult, "channel_mult"), "attributes: channel_mult", MULTIPLIER)


class ShapeAttributes(ImageModel):
    family = "attributes"
    no_samples = "it judges images"
    modality = "classifier"
    Config = AttributesConfig
    presets = {
        "tiny": dict(
            base_channels=32,
            batch_size=64,
            lr=2e-3,
            min_lr=1e-4,
            steps=3000,
            warmup=100,
            weight_decay=0.05,
            eval_every=500,
        ),
        "small": dict(
            base_channels=64,
            num_res_blocks=2,
            batch_size=64,
            lr=1e-3,
            min_lr=5e-5,
            steps=8000,
            warmup=200,
            weight_decay=0.05,
            eval_every=1000,
        ),
        "base": dict(
            base_channels=96,
            num_res_blocks=2,
            batch_size=128,
            lr=1e-3,
            min_lr=5e-5,
            steps=20000,
            warmup=500,
            weight_decay=0.05,
            eval_every=2000,
        ),
    }

    needs = "attributes"

    def evaluate(self, val: Any, *, batches: int = 20, batch_size: int = 64) -> dict[str, float]:
        """Held-out accuracy of each attribute."""
        pred = self.predict((val.images[:EVAL_IMAGES] + 1) / 2)
        return {
            f"val_{k}_accuracy": (p == val.attributes[k][:EVAL_IMAGES]).float().mean().item() for k, p in pred.items()
        }

    def __init__(self, config: AttributesConfig) -> None:
        super().__init__(config)
        config.validate()
        c = config
        self.trunk = ConvTrunk(
            in_channels=c.channels,
            base_channels=c.base_channels,
            channel_mult=parse_ints(c.channel_mult, "channel_mult"),
            num_res_blocks=c.num_res_blocks,
            dropout=c.dropout,
        )
        self.heads = nn.ModuleDict({k: nn.Linear(self.trunk.feature_dim, len(v)) for k, v in ATTRIBUTES.items()})

    def logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.trunk(x)[0]
        return {k: head(f) for k, head in self.heads.items()}

    def loss(self, batch: tuple) -> torch.Tensor:
        x, attrs = batch[0], batch[-1]
        if not isinstance(attrs, dict):
            raise GenlabError("attributes: the data must be shapes (it names kind, colour, size and position)")
        return sum(F.cross_entropy(out, attrs[k]) for k, out in self.logits(x).items())

    @torch.no_grad()
    def predict(self, images01: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
        """Images in [0, 1] → the predicted index of each attribute."""
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in ATTRIBUTES}
        for i in range(0, images01.shape[0], batch_size):
            for k, out in self.logits(images01[i : i + batch_size].to(self.device) * 2 - 1).items():
                parts[k].append(out.argmax(-1).cpu())
        return {k: torch.cat(v) for k, v in parts.items()}
