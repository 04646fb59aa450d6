"""An image classifier p(y | x_t), optionally of noisy images, for guidance and for evaluation.

Not a generative model, but trained, saved and loaded like one. Two uses:
- ``noisy=True``: trained on x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε at random t of a diffusion schedule, with t as an input,
  so ∇_{x_t} log p(y | x_t) can steer a diffusion sampler (classifier guidance, Dhariwal & Nichol 2021).
- ``noisy=False``: trained on clean images; its penultimate features give an in-domain FID for small images far
  from Inception's domain (e.g. 8×8 digits), and its predictions judge whether class-conditional samples show their
  class.
Representation: the encoder half of the UNet (residual blocks with a timestep embedding, downsampling), global
average pooling, a linear read-out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import (
    CLASSES,
    DEPTH,
    IMAGE_CHANNELS,
    IMAGE_SIZE,
    MULTIPLIER,
    PROBABILITY,
    TIMESTEPS,
    WIDTH,
    check_int_list,
    check_ranges,
)
from genlab.errors import GenlabError
from genlab.models.base import GenerativeModel
from genlab.models.diffusion import parse_ints
from genlab.models.image import EVAL_SEED, ImageModel
from genlab.nn.unet import ResBlock, group_norm, timestep_embedding
from genlab.sampling import diffusion as S


@dataclass
class ClassifierConfig:
    image_size: int = 16
    channels: int = 1  # set from the data
    num_classes: int = 10  # set from the data
    base_channels: int = 32
    channel_mult: str = "1,2,2"
    num_res_blocks: int = 1
    dropout: float = 0.1
    noisy: bool = False  # train on noised images x_t (for classifier guidance)
    timesteps: int = 1000  # the diffusion schedule it is noised with (noisy only)
    schedule: str = "linear"

    def validate(self) -> None:
        check_ranges(
            self,
            "classifier",
            {
                "image_size": IMAGE_SIZE,
                "channels": IMAGE_CHANNELS,
                "num_classes": CLASSES,
                "base_channels": WIDTH,
                "num_res_blocks": DEPTH,
                "dropout": PROBABILITY,
                "timesteps": TIMESTEPS,
            },
        )
        mult = parse_ints(self.channel_mult, "channel_mult")
        check_int_list(mult, "classifier: channel_mult", MULTIPLIER)
        if not mult or min(mult) < 1 or self.base_channels < 1 or self.num_res_blocks < 1:
            raise GenlabError("classifier: channel_mult, base_channels and num_res_blocks must be positive")
        if self.num_classes < 2:
            raise GenlabError("classifier: the data needs at least two classes (labels from sub-folder names)")


class ImageClassifier(ImageModel):
    family = "classifier"
    no_samples = "it labels images; use it for guidance or evaluation"
    modality = "classifier"
    Config = ClassifierConfig
    presets = {
        "tiny": dict(
            base_channels=32,
            channel_mult="1,2,2",
            num_res_blocks=1,
            batch_size=64,
            lr=2e-3,
            min_lr=1e-4,
            steps=1500,
            warmup=100,
            weight_decay=0.05,
            eval_every=250,
        ),
        "small": dict(
            base_channels=64,
            channel_mult="1,2,2",
            num_res_blocks=2,
            batch_size=64,
            lr=1e-3,
            min_lr=5e-5,
            steps=5000,
            warmup=200,
            weight_decay=0.05,
            eval_every=500,
        ),
        "base": dict(
            base_channels=128,
            channel_mult="1,2,2,2",
            num_res_blocks=2,
            batch_size=128,
            lr=5e-4,
            min_lr=2e-5,
            steps=20000,
            warmup=500,
            weight_decay=0.05,
            eval_every=1000,
        ),
    }

    needs = "labels"

    def evaluate(self, val: Any, *, batches: int = 20, batch_size: int = 64) -> dict[str, float]:
        """Held-out accuracy on clean images (and, for a noisy classifier, the loss over random noise levels)."""
        preds, _ = self.predict((val.images + 1) / 2)
        out = {"val_accuracy": (preds == val.labels).float().mean().item()}
        if self.config.noisy:
            g = torch.Generator().manual_seed(EVAL_SEED)
            t = torch.randint(0, self.config.timesteps, (len(val),), generator=g)
            x_t = S.add_noise(val.images, torch.randn(val.images.shape, generator=g), t, self.alphas_cumprod.cpu())
            logits = torch.cat(
                [
                    self.logits(x_t[i : i + 256].to(self.device), t[i : i + 256].to(self.device)).cpu()
                    for i in range(0, len(val), 256)
                ]
            )
            out["val_noisy_loss"] = F.cross_entropy(logits, val.labels).item()
            out["val_noisy_accuracy"] = (logits.argmax(-1) == val.labels).float().mean().item()
        return out

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config)
        config.validate()
        c = config
        emb = 4 * c.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(c.base_channels, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.stem = nn.Conv2d(c.channels, c.base_channels, 3, padding=1)
        layers: list[nn.Module] = []
        ch = c.base_channels
        mult = parse_ints(c.channel_mult, "channel_mult")
        for level, m in enumerate(mult):
            for _ in range(c.num_res_blocks):
                layers.append(ResBlock(ch, c.base_channels * m, emb, c.dropout))
                ch = c.base_channels * m
            if level < len(mult) - 1:
                layers.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        self.blocks = nn.ModuleList(layers)
        self.norm = group_norm(ch)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(ch, c.num_classes)
        self.feature_dim = ch
        betas = S.beta_schedule(c.schedule, c.timesteps)
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0).float(), persistent=False)

    def features(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """``B×C×H×W`` images in [-1, 1] (noised at ``t`` for a noisy classifier) → ``B×F`` pooled features."""
        if t is None:
            t = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels))
        h = self.stem(x)
        for layer in self.blocks:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        return F.silu(self.norm(h)).mean(dim=(2, 3))

    def logits(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.drop(self.features(x, t)))

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        x, y = batch[0], batch[1]
        if y is None:
            raise GenlabError("classifier: the data has no labels (put images in one sub-folder per class)")
        t = None
        if self.config.noisy:
            t = torch.randint(0, self.config.timesteps, (x.shape[0],), device=x.device)
            x = S.add_noise(x, torch.randn_like(x), t, self.alphas_cumprod)
        return F.cross_entropy(self.logits(x, t), y)

    @torch.no_grad()
    def predict(self, images01: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean images in [0, 1] → (predicted classes, pooled features)."""
        preds, feats = [], []
        for i in range(0, images01.shape[0], batch_size):
            x = images01[i : i + batch_size].to(self.device) * 2 - 1
            f = self.features(x)
            preds.append(self.head(f).argmax(-1).cpu())
            feats.append(f.cpu())
        return torch.cat(preds), torch.cat(feats)

    def noisy_log_prob(self, y: torch.Tensor, diffusion: GenerativeModel) -> Callable:
        """log p(y | x_t) as a function of (x_t, t), for :func:`genlab.sampling.diffusion.classifier_guided`."""
        c, d = self.config, diffusion.config
        if not c.noisy:
            raise GenlabError("--classifier must be trained on noisy images (--set noisy=true) to guide sampling")
        mismatch = [
            k
            for k in ("timesteps", "schedule", "image_size", "channels", "num_classes")
            if getattr(c, k) != getattr(d, k)
        ]
        if mismatch:
            detail = ", ".join(f"{k} {getattr(c, k)} vs {getattr(d, k)}" for k in mismatch)
            raise GenlabError(f"--classifier does not match the diffusion model: {detail}")

        def log_prob(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return F.log_softmax(self.logits(x, t).float(), dim=-1).gather(1, y[:, None])[:, 0]

        return log_prob
