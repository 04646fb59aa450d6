"""A convolutional trunk: residual stages that halve the resolution, then global average pooling.

    B×C×H×W  →  B×F pooled features (F = base_channels × channel_mult[-1]), and the feature map of every stage

Used by the contrastive feature network (SimCLR), CLIP's image tower and the shapes attribute classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.unet import ResBlock, group_norm


class ConvTrunk(nn.Module):
    def __init__(
        self,
        *,
        in_channels: int,
        base_channels: int = 32,
        channel_mult: tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.stages = nn.ModuleList()
        self.downs = nn.ModuleList()
        ch = base_channels
        for level, mult in enumerate(channel_mult):
            blocks = []
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, base_channels * mult, dropout=dropout))
                ch = base_channels * mult
            self.stages.append(nn.Sequential(*blocks))
            self.downs.append(
                nn.Conv2d(ch, ch, 3, stride=2, padding=1) if level < len(channel_mult) - 1 else nn.Identity()
            )
        self.norm = group_norm(ch)
        self.feature_dim = ch

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Pooled features ``B×F`` and each stage's output map (before its downsampling)."""
        h = self.stem(x)
        maps = []
        for stage, down in zip(self.stages, self.downs, strict=True):
            h = stage(h)
            maps.append(h)
            h = down(h)
        return F.silu(self.norm(h)).mean(dim=(2, 3)), maps
