"""The encoder–decoder with skip connections of Deep Image Prior (Ulyanov et al. 2018, supplementary "skip").

Each of ``depth`` levels halves the resolution with a stride-2 3×3 convolution and a 3×3 convolution, goes
deeper, comes back up by bilinear upsampling, concatenates a 1×1 *skip* projection of its input (``skip``
channels), and mixes with a 3×3 and a 1×1 convolution. Every convolution is followed by batch norm and a leaky
ReLU; convolutions pad by reflection. A 1×1 convolution and a sigmoid give the output image in [0, 1].

Input ``B×C_in×H×W`` with ``H`` and ``W`` multiples of ``2^depth``; output ``B×C_out×H×W``. The paper's
network (``width=128, depth=5, skip=4``, 32 input channels) has 2.2 M parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_act(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Convolution (reflection padding) → batch norm → LeakyReLU(0.2)."""
    return nn.Sequential(
        nn.ReflectionPad2d(kernel // 2),
        nn.Conv2d(c_in, c_out, kernel, stride=stride),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


class SkipLevel(nn.Module):
    """One level: ``x → [skip(x), up(deeper(down(x)))] → merge``; resolution in = resolution out."""

    def __init__(self, c_in: int, width: int, skip: int, deeper: nn.Module | None, deeper_out: int) -> None:
        super().__init__()
        self.skip = conv_bn_act(c_in, skip, 1) if skip else None
        self.down = nn.Sequential(conv_bn_act(c_in, width, 3, stride=2), conv_bn_act(width, width, 3))
        self.deeper = deeper
        merged = skip + (deeper_out if deeper is not None else width)
        self.merge = nn.Sequential(nn.BatchNorm2d(merged), conv_bn_act(merged, width, 3), conv_bn_act(width, width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(x)
        if self.deeper is not None:
            y = self.deeper(y)
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        if self.skip is not None:
            y = torch.cat([self.skip(x), y], dim=1)
        return self.merge(y)


class SkipEncoderDecoder(nn.Module):
    """Deep Image Prior's hourglass with skips: ``B×c_in×H×W`` → ``B×c_out×H×W`` in [0, 1]."""

    def __init__(self, *, c_in: int = 32, c_out: int = 3, width: int = 128, depth: int = 5, skip: int = 4) -> None:
        super().__init__()
        self.multiple = 2**depth  # H and W must be multiples of this
        level: nn.Module | None = None
        for i in range(depth):  # built from the deepest level out
            level = SkipLevel(c_in if i == depth - 1 else width, width, skip, level, width)
        self.body = level
        self.head = nn.Conv2d(width, c_out, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.body(z)))
