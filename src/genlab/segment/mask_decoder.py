"""The mask decoder: image embedding + prompt tokens → masks and their predicted IoU (SAM §3, "Mask decoder").

Learned output tokens — one IoU token and four mask tokens — are prepended to the prompt tokens; the dense prompt is
added to the image embedding; a :class:`TwoWayTransformer` updates both. The image cells are then upsampled 4× by
two transposed convolutions, and each mask token, through its own 3-layer MLP (a hypernetwork), becomes the weights
of a dynamic linear classifier applied at every upsampled position: mask logits = MLP_i(token_i) · features.
The IoU token's MLP predicts each mask's IoU with the mask the user meant.

Ambiguity (SAM §3, "Resolving ambiguity"): mask tokens 1-3 answer an ambiguous prompt with three masks (whole, part,
subpart); token 0 gives the single mask for unambiguous prompts (several points, a box with points, a mask).
Skip connections (SAM 2, §4): the encoder's stride-2 and stride-4 feature maps, projected once per image, are added
at the matching upsampling step, so edges are drawn from high-resolution features.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.segment.image_encoder import ImageFeatures, LayerNorm2d
from genlab.segment.transformer import TwoWayTransformer

NUM_MULTIMASK = 3


class MLPHead(nn.Module):
    """``…×C_in → …×C_out`` through ``depth`` linear layers with ReLU; optionally a sigmoid on the output."""

    def __init__(self, *, in_dim: int, hidden_dim: int, out_dim: int, depth: int, sigmoid: bool = False) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (depth - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.sigmoid = sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else torch.relu(layer(x))
        return torch.sigmoid(x) if self.sigmoid else x


class MaskDecoder(nn.Module):
    """Predicts ``1 + NUM_MULTIMASK`` masks (``P×4×4h×4w`` logits) and their IoU (``P×4``) for ``P`` prompts."""

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        skip_channels: tuple[int, int],
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        c = transformer_dim
        self.transformer = transformer
        self.num_mask_tokens = NUM_MULTIMASK + 1
        self.iou_token = nn.Embedding(1, c)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, c)
        self.upscale1 = nn.ConvTranspose2d(c, c // 4, kernel_size=2, stride=2)
        self.upscale_norm = LayerNorm2d(c // 4)
        self.upscale2 = nn.ConvTranspose2d(c // 4, c // 8, kernel_size=2, stride=2)
        self.act = nn.GELU()
        fine, coarse = skip_channels  # stride-2 and stride-4 encoder features (relative to the embedding: 4× and 2×)
        self.skip_fine = nn.Conv2d(fine, c // 8, kernel_size=1)
        self.skip_coarse = nn.Conv2d(coarse, c // 4, kernel_size=1)
        self.hypernetworks = nn.ModuleList(
            MLPHead(in_dim=c, hidden_dim=c, out_dim=c // 8, depth=3) for _ in range(self.num_mask_tokens)
        )
        self.iou_head = MLPHead(
            in_dim=c, hidden_dim=iou_head_hidden_dim, out_dim=self.num_mask_tokens, depth=iou_head_depth, sigmoid=True
        )

    def project_skips(self, features: ImageFeatures) -> ImageFeatures:
        """Project the two finest feature maps to the upsampler's widths, once per image (not per prompt)."""
        fine, coarse = features.high_res[-2], features.high_res[-1]
        return ImageFeatures(features.embedding, [self.skip_fine(fine), self.skip_coarse(coarse)])

    def forward(
        self, features: ImageFeatures, image_pe: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``features``: one row per prompt (already projected, see :meth:`project_skips`); ``image_pe``
        ``1×C×h×w``; ``sparse`` ``P×T×C``; ``dense`` ``P×C×h×w`` → (mask logits ``P×4×4h×4w``, IoU ``P×4``)."""
        P = sparse.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens[None].expand(P, -1, -1), sparse], dim=1)
        src = features.embedding + dense
        b, c, h, w = src.shape
        hs, src = self.transformer(src, image_pe.expand(P, -1, -1, -1), tokens)
        iou_out, mask_out = hs[:, 0], hs[:, 1 : 1 + self.num_mask_tokens]
        src = src.transpose(1, 2).reshape(b, c, h, w)
        fine, coarse = features.high_res
        up = self.act(self.upscale_norm(self.upscale1(src) + coarse))
        up = self.act(self.upscale2(up) + fine)
        weights = torch.stack([mlp(mask_out[:, i]) for i, mlp in enumerate(self.hypernetworks)], dim=1)
        masks = (weights @ up.flatten(2)).view(b, self.num_mask_tokens, up.shape[2], up.shape[3])
        return masks, self.iou_head(iou_out)
