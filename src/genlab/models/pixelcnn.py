"""Gated PixelCNN: an autoregressive model of discrete pixels with an exact likelihood (van den Oord et al. 2016,
"Conditional Image Generation with PixelCNN Decoders").

Formulation: an image is a sequence of pixels in raster order, each of ``levels`` discrete values, and
    p(x | y) = Π_i p(x_i | x_<i, y),
so log p(x) is exact: the held-out bits per dimension are −log₂ p(x) / (H·W·C), on the same scale as a uniform model
(log₂ levels: 4.09 for the 17 grey levels of the digits). The channels of one pixel are modelled independently given
the pixels before it (PixelCNN++ couples them; a grey image has one channel, so nothing is lost there).
Representation: two stacks of gated convolutions, so the receptive field has no blind spot. The vertical stack sees
the rows above (a (k//2+1)×k convolution whose output is shifted down one row before it reaches the horizontal stack);
the horizontal stack sees the pixels to the left in the current row (a 1×(k//2+1) convolution, shifted right one
pixel in the first layer so a pixel never sees itself). Each layer's gate is tanh(a + V_a·y) ⊙ σ(b + V_b·y), with a
learned class embedding y for a class-conditional model; the horizontal stack is residual after the first layer.
Objective: the cross-entropy of every pixel's softmax over ``levels`` values (maximum likelihood).
Sampling: pixel by pixel, a batch at once; at row i only rows ≤ i are run through the network (the rest cannot
matter), and ``temperature`` divides the logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import CLASSES, DEPTH, IMAGE_CHANNELS, IMAGE_SIZE, PROBABILITY, WIDTH, Range, check_ranges
from genlab.data.image_data import quantize
from genlab.errors import GenlabError
from genlab.models.image import ImageModel


@dataclass
class PixelCNNConfig:
    image_size: int = 8
    channels: int = 1  # set from the data
    num_classes: int = 0  # set from the data: 0 = unconditional
    levels: int = 256  # set from the data: values per channel (the digits have 17)
    width: int = 64  # channels of each stack
    layers: int = 8  # gated layers
    kernel: int = 5  # the vertical stack's width (odd); the horizontal stack sees kernel//2 pixels to the left
    head: int = 128  # channels of the 1×1 output network
    dropout: float = 0.0  # on each gated layer's horizontal output, before its 1×1 convolution (PixelCNN++)

    def validate(self) -> None:
        check_ranges(
            self,
            "pixelcnn",
            {
                "image_size": IMAGE_SIZE,
                "channels": IMAGE_CHANNELS,
                "num_classes": CLASSES,
                "levels": Range(2, 256),
                "width": WIDTH,
                "layers": DEPTH,
                "kernel": Range(3, 15),
                "head": WIDTH,
                "dropout": PROBABILITY,
            },
        )
        if self.kernel % 2 == 0:
            raise GenlabError(f"pixelcnn: kernel={self.kernel} must be odd (the vertical stack is centred)")


class GatedLayer(nn.Module):
    """One layer of both stacks (van den Oord et al. 2016, Figure 2)."""

    def __init__(self, width: int, kernel: int, num_classes: int, first: bool, dropout: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.first, self.half = first, kernel // 2
        self.vertical = nn.Conv2d(width, 2 * width, (self.half + 1, kernel))
        self.v_to_h = nn.Conv2d(2 * width, 2 * width, 1)
        self.horizontal = nn.Conv2d(width, 2 * width, (1, self.half + 1))
        self.h_out = nn.Conv2d(width, width, 1)
        self.cond = nn.Embedding(num_classes, 4 * width) if num_classes else None

    @staticmethod
    def gate(x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if c is not None:
            x = x + c[:, :, None, None]
        a, b = x.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, v: torch.Tensor, h: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        cv, ch = self.cond(y).chunk(2, dim=1) if self.cond is not None and y is not None else (None, None)
        k = self.half
        v_pre = self.vertical(F.pad(v, (k, k, k, 0)))  # row i sees rows i-k … i
        down = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]  # shifted: row i sees rows < i
        h_pre = self.horizontal(F.pad(h, (k, 0, 0, 0)))  # pixel j sees j-k … j of its row
        if self.first:  # the first layer must not see the pixel itself: shift right one
            h_pre = F.pad(h_pre, (1, 0, 0, 0))[..., :-1]
        h_new = self.h_out(self.drop(self.gate(h_pre + self.v_to_h(down), ch)))
        return self.gate(v_pre, cv), h_new if self.first else h + h_new


class PixelCNN(ImageModel):
    family = "pixelcnn"
    modality = "image"
    Config = PixelCNNConfig
    condition = "class"
    sampling_controls = frozenset({"temperature", "progress"})
    presets = {
        # the 8×8 digits at 17 levels: about two minutes on 2 CPU cores. 1,438 training images are few for 1.4 M
        # parameters: without dropout held-out bits/dim are 1.79 at 500 steps and 5.88 at 2,000 (memorised); with
        # dropout 0.3, 1.68 at 500 and rising by 750
        "tiny": dict(
            image_size=8,
            width=64,
            layers=8,
            kernel=5,
            head=128,
            dropout=0.3,
            batch_size=64,
            lr=2e-3,
            min_lr=1e-4,
            steps=500,
            warmup=100,
            weight_decay=0.0,
            eval_every=250,
            sample_every=500,
        ),  # fmt: skip
        "small": dict(
            image_size=16,
            width=96,
            layers=12,
            kernel=5,
            head=256,
            batch_size=64,
            lr=1e-3,
            min_lr=5e-5,
            steps=20000,
            warmup=500,
            weight_decay=0.0,
            eval_every=2000,
            sample_every=4000,
        ),  # fmt: skip
        "base": dict(
            image_size=32,
            width=128,
            layers=15,
            kernel=5,
            head=512,
            batch_size=128,
            lr=5e-4,
            min_lr=2e-5,
            steps=100000,
            warmup=1000,
            weight_decay=0.0,
            eval_every=5000,
            sample_every=5000,
        ),  # fmt: skip
    }

    def __init__(self, config: PixelCNNConfig) -> None:
        super().__init__(config)
        c = config
        self.stem_v = nn.Conv2d(c.channels, c.width, 1)  # per-pixel embeddings of the (dequantised) input
        self.stem_h = nn.Conv2d(c.channels, c.width, 1)
        self.layers = nn.ModuleList(
            GatedLayer(c.width, c.kernel, c.num_classes, first=i == 0, dropout=c.dropout) for i in range(c.layers)
        )
        self.out = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c.width, c.head, 1), nn.ReLU(), nn.Conv2d(c.head, c.channels * c.levels, 1)
        )

    # --- the model ----------------------------------------------------------------------------------
    def logits(self, q: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Levels ``B×C×H×W`` → logits ``B×C×levels×H×W``: position (i, j) sees only the pixels before it."""
        x = q.float() / (self.config.levels - 1) * 2 - 1
        v, h = self.stem_v(x), self.stem_h(x)
        for layer in self.layers:
            v, h = layer(v, h, y)
        out = self.out(h)
        return out.view(q.shape[0], self.config.channels, self.config.levels, *q.shape[2:])

    def nll(self, images: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """−log p(x | y) in nats for each image (exact)."""
        q = quantize(images, self.config.levels)
        y = y if self.conditional else None
        return F.cross_entropy(self.logits(q, y).transpose(1, 2), q, reduction="none").flatten(1).sum(1)

    def log_prob(self, x: Any, cond: Any = None) -> torch.Tensor:
        return -self.nll(x, self.check_class(cond))

    def loss(self, batch: Any) -> torch.Tensor:
        images, labels, _ = batch
        dims = images[0].numel()
        return self.nll(images.to(self.device), None if labels is None else labels.to(self.device)).mean() / dims

    @torch.no_grad()
    def network_evals(self, **controls: Any) -> int:
        """One pass per pixel position (its channels drawn together; the rows below it cut off)."""
        return self.config.image_size**2

    def sample(
        self,
        n: int,
        cond: Any = None,
        *,
        generator: torch.Generator | None = None,
        temperature: float | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """``n`` images in [0, 1], pixel by pixel in raster order; ``temperature`` (default 1) divides the logits
        (0: the most likely value). A conditional model draws each sample's class uniformly when none is given."""
        from tqdm.auto import tqdm

        temperature = 1.0 if temperature is None else float(temperature)
        if temperature < 0 or not math.isfinite(temperature):
            raise GenlabError(f"--temperature {temperature}: must be a finite number ≥ 0")
        c, s = self.config, self.config.image_size
        y = self.sample_classes(n, cond, generator)
        was = self.training
        self.eval()
        q = torch.zeros(n, c.channels, s, s, dtype=torch.long, device=self.device)
        for i in tqdm(range(s), desc="sampling rows", disable=not progress, leave=False):
            for j in range(s):
                logits = self.logits(q[:, :, : i + 1], y)[:, :, :, i, j]  # B×C×levels; rows below cannot matter
                if temperature == 0:
                    q[:, :, i, j] = logits.argmax(-1)
                else:
                    probs = F.softmax(logits.float() / temperature, dim=-1).flatten(0, 1)
                    q[:, :, i, j] = torch.multinomial(probs, 1, generator=generator).view(n, c.channels)
        self.train(was)
        return q.float() / (c.levels - 1)

    def sampling_bytes(self, n: int, tokens: int = 0) -> int:
        c = self.config
        return n * c.image_size**2 * (6 * c.width + c.head + c.channels * c.levels) * 4 * 2

    # --- figures ------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, val: Any, *, batches: int = 20, batch_size: int = 64) -> dict[str, Any]:
        """Exact held-out bits per dimension over every held-out image, beside a uniform model's."""
        total, count = 0.0, 0
        for i in range(0, len(val), 256):
            x = val.images[i : i + 256].to(self.device)
            y = val.labels[i : i + 256].to(self.device) if val.labels is not None else None
            total += float(self.nll(x, y).sum())
            count += x[0].numel() * x.shape[0]
        return {
            "bits_per_dim": total / count / math.log(2),
            "likelihood": "exact",
            "uniform_bits_per_dim": math.log2(self.config.levels),
            "levels": self.config.levels,
        }

    def preview(self, path: Path, val: Any, seed: int) -> Path:
        return self.sample_grid(path, seed)
