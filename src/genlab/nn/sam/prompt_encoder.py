"""The prompt encoder: points, boxes and masks → tokens and a dense embedding (SAM §3, "Prompt encoder").

Sparse prompts. A point is the random Fourier feature of its position (Tancik et al. 2020) plus a learned embedding
of its type: 0 background point, 1 foreground point, 2 box top-left corner, 3 box bottom-right corner; a slot that
holds no point (label −1, padding) gets only the learned "not a point" embedding. A box is its two corners, so one
batch may mix boxes and point sets: a prompt without a box has two padding slots.

Dense prompts. A mask (the logits of a previous answer, ``m×m``: ``4h×4w`` for an ``h×w`` embedding as in SAM, or
finer for a decoder that draws masks at the image's resolution, which are first averaged down to ``4h×4w``) is
downscaled by two stride-2 convolutions to the embedding's size and added to the image embedding; without a mask a
learned "no mask" embedding is added instead.

Coordinates are continuous and in the model's input frame: x to the right, y down, 0 … ``input_size``; the centre of
pixel (i, j) is (i + 0.5, j + 0.5).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.sam.image_encoder import LayerNorm2d

NOT_A_POINT, BACKGROUND, FOREGROUND, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = -1, 0, 1, 2, 3


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features: γ(p) = [sin(2π B p), cos(2π B p)] with B ~ N(0, scale²), p in [-1, 1]²."""

    def __init__(self, *, num_pos_feats: int, scale: float = 1.0) -> None:
        super().__init__()
        # a buffer, not a parameter: fixed after initialization, saved with the weights
        self.register_buffer("gaussian_matrix", scale * torch.randn(2, num_pos_feats))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """``…×2`` coordinates normalized to [0, 1] → ``…×2F`` features."""
        coords = (2 * coords - 1) @ self.gaussian_matrix.to(coords.dtype)
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def grid(self, h: int, w: int) -> torch.Tensor:
        """The encoding of every cell centre of an ``h×w`` grid: ``2F×h×w``."""
        device = self.gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        return self.encode(torch.stack([xx, yy], dim=-1)).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    """Points, boxes and mask logits → sparse ``P×T×C`` tokens and a dense ``P×C×h×w`` embedding."""

    def __init__(
        self, *, embed_dim: int, embedding_size: int, input_size: int, mask_in_chans: int = 16, mask_upscale: int = 4
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.embedding_size = embedding_size
        self.mask_upscale = mask_upscale  # the mask prompt's side over the embedding's (the decoder's output)
        self.input_size = input_size
        self.pe_layer = PositionEmbeddingRandom(num_pos_feats=embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))  # labels 0, 1, 2, 3
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    @property
    def mask_input_size(self) -> int:
        """Side of the mask prompt: the decoder's output, ``mask_upscale``× the embedding (SAM: 4×)."""
        return self.mask_upscale * self.embedding_size

    def dense_pe(self) -> torch.Tensor:
        """The positional encoding of the image embedding's cells: ``1×C×h×w``."""
        return self.pe_layer.grid(self.embedding_size, self.embedding_size)[None]

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``P×N×2`` coordinates (input frame) and ``P×N`` labels in {−1, 0, 1, 2, 3} → ``P×N×C`` tokens."""
        pe = self.pe_layer.encode(coords / self.input_size)
        labels = labels[..., None]
        out = torch.where(labels == NOT_A_POINT, self.not_a_point_embed.weight, pe)
        for kind, embedding in enumerate(self.point_embeddings):
            out = out + (labels == kind) * embedding.weight
        return out

    def forward(
        self,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
        *,
        count: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts for ``P`` masks → (sparse ``P×T×C``, dense ``P×C×h×w``).

        coords ``P×N×2`` with labels ``P×N`` (−1 pads); boxes ``P×4`` as x0, y0, x1, y1 (a row of NaN: no box);
        masks ``P×1×m×m`` logits (m = :attr:`mask_input_size`). ``count`` is P when every prompt is None.
        """
        sparse = []
        if coords is not None:
            sparse.append(self.embed_points(coords, labels))
        if boxes is not None:
            present = ~torch.isnan(boxes).any(dim=1, keepdim=True)
            corners = torch.nan_to_num(boxes).view(-1, 2, 2)
            corner_labels = torch.tensor([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT], device=boxes.device)
            corner_labels = torch.where(present, corner_labels, torch.full_like(corner_labels, NOT_A_POINT))
            sparse.append(self.embed_points(corners, corner_labels))
        P = next((t.shape[0] for t in (coords, boxes, masks) if t is not None), count)
        if P is None:
            raise ValueError("no prompt and no count")
        device = self.no_mask_embed.weight.device
        tokens = torch.cat(sparse, dim=1) if sparse else torch.empty(P, 0, self.embed_dim, device=device)
        if masks is not None:
            if self.mask_upscale > 4:
                masks = F.avg_pool2d(masks, self.mask_upscale // 4)
            dense = self.mask_downscaling(masks)
        else:
            s = self.embedding_size
            dense = self.no_mask_embed.weight.view(1, -1, 1, 1).expand(P, -1, s, s)
        return tokens, dense
