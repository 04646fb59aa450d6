"""A mask-quality head that sees the mask it scores (the idea of Mask Scoring R-CNN, Huang et al. 2019).

SAM predicts each answer's IoU from one output token of the decoder, which attends to the image and the prompts but
never to the mask it stands for. This head looks at the mask itself: the mask's probability map is laid over the
image features at a quarter of the input side and at the embedding's side, convolved, pooled inside and outside the
mask, and mapped to an IoU in [0, 1]. It reads the masks detached, so its loss trains it (and the shared features)
without bending the masks towards what is easy to score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.sam.image_encoder import ImageFeatures


class MaskQualityHead(nn.Module):
    """(features with one row per prompt, mask logits ``P×K×m×m``) → predicted IoU ``P×K``."""

    def __init__(self, *, embed_dim: int, skip_dim: int, width: int) -> None:
        super().__init__()
        self.fine = nn.Sequential(
            nn.Conv2d(skip_dim + 2, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GELU(),
        )  # fmt: skip
        self.coarse = nn.Conv2d(embed_dim + 1, width, 1)
        self.mix = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.GELU())
        self.out = nn.Sequential(nn.Linear(3 * width, width), nn.GELU(), nn.Linear(width, 1))

    def forward(self, features: ImageFeatures, logits: torch.Tensor) -> torch.Tensor:
        P, K = logits.shape[:2]
        skip = features.high_res[0]  # the coarsest projected skip map: stride 4
        embedding = features.embedding  # stride 8 (or 16)
        masks = torch.sigmoid(logits.flatten(0, 1)[:, None].float())  # (P·K)×1×m×m
        at_skip = F.adaptive_avg_pool2d(masks, skip.shape[-2:])
        at_embed = F.adaptive_avg_pool2d(masks, embedding.shape[-2:])
        rows = torch.arange(P, device=logits.device).repeat_interleave(K)
        edge = at_skip * (1 - at_skip) * 4  # where the mask is undecided or its border passes
        x = self.fine(torch.cat([skip[rows], at_skip, edge], 1))
        if x.shape[-2:] != embedding.shape[-2:]:
            x = F.adaptive_avg_pool2d(x, embedding.shape[-2:])
        x = self.mix(x + self.coarse(torch.cat([embedding[rows], at_embed], 1)))
        w = at_embed.flatten(1)[:, None]  # (P·K)×1×hw
        flat = x.flatten(2)
        inside = (flat * w).sum(-1) / w.sum(-1).clamp(min=1e-3)
        outside = (flat * (1 - w)).sum(-1) / (1 - w).sum(-1).clamp(min=1e-3)
        score = self.out(torch.cat([inside, outside, flat.mean(-1)], 1))
        return torch.sigmoid(score).view(P, K)
