"""Contrastive image features (SimCLR, Chen et al. 2020) for a perceptual loss, learned without labels.

Formulation: two random crops (with flips and a little brightness jitter) of the same image should map to nearby
points, crops of different images far apart. Representation: a convolutional trunk and a small projection MLP.
Objective: NT-Xent — for each of the 2N views, the cross-entropy of picking its partner among the other 2N-1 by
cosine similarity / τ (eq. 1 of the paper).
Use: pretrained LPIPS backbones cannot be downloaded here, so the autoencoder's perceptual loss compares these
features instead — lecture 03's "perceptual loss measured in the feature space of a network trained by contrastive
learning on random crops" (:meth:`FeatureNet.perceptual_distance`, LPIPS-style: channel-normalized feature maps of
every stage, squared differences, averaged; no learned weights).
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
    POSITIVE,
    WIDTH,
    Range,
    check_int_list,
    check_ranges,
)
from genlab.models.diffusion import parse_ints
from genlab.models.image import EVAL_IMAGES, EVAL_SEED, ImageModel
from genlab.nn.convnet import ConvTrunk


@dataclass
class FeaturesConfig:
    image_size: int = 32
    channels: int = 3  # set from the data
    base_channels: int = 32
    channel_mult: str = "1,2,2"
    num_res_blocks: int = 1
    projection_dim: int = 64
    temperature: float = 0.2
    crop_scale: float = 0.5  # random crops cover this fraction of the side or more

    def validate(self) -> None:
        check_ranges(
            self,
            "features",
            {
                "image_size": IMAGE_SIZE,
                "channels": IMAGE_CHANNELS,
                "base_channels": WIDTH,
                "num_res_blocks": DEPTH,
                "projection_dim": WIDTH,
                "temperature": POSITIVE,
                "crop_scale": Range(0.1, 1.0),
            },
        )
        check_int_list(parse_ints(self.channel_mult, "channel_mult"), "features: channel_mult", MULTIPLIER)


class FeatureNet(ImageModel):
    family = "features"
    no_samples = "it measures images"
    modality = "features"
    Config = FeaturesConfig
    presets = {
        "tiny": dict(
            base_channels=32,
            channel_mult="1,2,2",
            batch_size=128,
            lr=2e-3,
            min_lr=1e-4,
            steps=1500,
            warmup=100,
            weight_decay=0.05,
            eval_every=500,
        ),
        "small": dict(
            base_channels=48,
            channel_mult="1,2,2",
            batch_size=256,
            lr=1e-3,
            min_lr=5e-5,
            steps=5000,
            warmup=200,
            weight_decay=0.05,
            eval_every=1000,
        ),
        "base": dict(
            base_channels=64,
            channel_mult="1,2,2,2",
            num_res_blocks=2,
            batch_size=512,
            lr=1e-3,
            min_lr=5e-5,
            steps=20000,
            warmup=500,
            weight_decay=0.05,
            eval_every=2000,
        ),
    }

    def evaluate(self, val: Any, *, batches: int = 20, batch_size: int = 64) -> dict[str, float]:
        """The contrastive loss on held-out images, with the same random views at every evaluation."""
        torch.manual_seed(EVAL_SEED)  # on the Trainer's forked RNG: training randomness is untouched
        return {"val_loss": self.loss((val.images[:EVAL_IMAGES].to(self.device), None, None)).item()}

    def __init__(self, config: FeaturesConfig) -> None:
        super().__init__(config)
        config.validate()
        c = config
        self.trunk = ConvTrunk(
            in_channels=c.channels,
            base_channels=c.base_channels,
            channel_mult=parse_ints(c.channel_mult, "channel_mult"),
            num_res_blocks=c.num_res_blocks,
        )
        d = self.trunk.feature_dim
        self.projection = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, c.projection_dim))

    def views(self, x: torch.Tensor) -> torch.Tensor:
        """A random crop (resized back), flip and brightness jitter of each image in ``B×C×H×W`` (range [-1, 1])."""
        B, _, H, W = x.shape
        dev = x.device
        side = torch.empty(B, device=dev).uniform_(self.config.crop_scale, 1.0)
        cx = torch.rand(B, device=dev) * (1 - side) * 2 - (1 - side)  # crop centre in [-(1-s), 1-s]
        cy = torch.rand(B, device=dev) * (1 - side) * 2 - (1 - side)
        flip = torch.where(torch.rand(B, device=dev) < 0.5, -1.0, 1.0)
        theta = torch.zeros(B, 2, 3, device=dev)
        theta[:, 0, 0], theta[:, 1, 1] = side * flip, side
        theta[:, 0, 2], theta[:, 1, 2] = cx, cy
        grid = F.affine_grid(theta, [B, x.shape[1], H, W], align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        return (out + torch.empty(B, 1, 1, 1, device=dev).uniform_(-0.15, 0.15)).clamp(-1, 1)

    def loss(self, batch: tuple[torch.Tensor, object]) -> torch.Tensor:
        """NT-Xent over two views of each image."""
        x = batch[0]
        z = F.normalize(self.projection(self.trunk(torch.cat([self.views(x), self.views(x)]))[0]), dim=-1)
        n = x.shape[0]
        sim = z @ z.T / self.config.temperature
        sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
        partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(sim, partner)

    def perceptual_distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-image distance ``B`` between images in [-1, 1]: mean squared difference of channel-normalized
        feature maps, summed over stages (LPIPS without its learned weights)."""
        _, fx = self.trunk(x)
        _, fy = self.trunk(y)
        total = torch.zeros(x.shape[0], device=x.device)
        for a, b in zip(fx, fy, strict=True):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-8)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-8)
            total = total + (a - b).pow(2).sum(1).mean(dim=(1, 2))
        return total
