"""The mask decoder: image embedding + prompt tokens → masks and their predicted IoU (SAM §3, "Mask decoder").

Learned output tokens — one IoU token and four mask tokens — are prepended to the prompt tokens; the dense prompt is
added to the image embedding; a :class:`TwoWayTransformer` updates both. The image cells are then upsampled 4× by
two transposed convolutions (SAM), or on to the image's own resolution (``upscale``; the steps past 4× bilinear),
and each mask token, through its own 3-layer MLP (a hypernetwork), becomes the weights of a dynamic linear
classifier applied at every upsampled position: mask logits = MLP_i(token_i) · features.
The IoU token's MLP predicts each mask's IoU with the mask the user meant.

Ambiguity (SAM §3, "Resolving ambiguity"): mask tokens 1-3 answer an ambiguous prompt with three masks (whole, part,
subpart); token 0 gives the single mask for unambiguous prompts (several points, a box with points, a mask).
Skip connections (SAM 2, §4): the encoder's feature map of the matching stride, projected once per image, is added
at each upsampling step, so edges are drawn from high-resolution features. SAM draws masks at a quarter of its
input's side and upsamples the logits bilinearly; at genlab's 64-pixel side that is 32×32 logits for a part a few
pixels wide, and a true mask pooled to 32×32 and upsampled back keeps only 0.88 IoU on the parts of ``shapes`` (0.83
on masks under 30 pixels; docs/segment.md); ``upscale`` = the stride draws masks at the full side instead.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.nn.sam.image_encoder import ImageFeatures, LayerNorm2d
from genlab.nn.sam.transformer import TwoWayTransformer

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
    """Predicts ``1 + NUM_MULTIMASK`` masks (``P×4×m×m`` logits, m = ``upscale``·h) and their IoU (``P×4``) for
    ``P`` prompts."""

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        skip_channels: tuple[int, ...],
        upscale: int = 4,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        """``skip_channels``: the widths of the encoder's high-resolution maps, finest first (the last one is at
        half the embedding's resolution); ``upscale``: the mask logits' side over the embedding's (4, 8, 16, …),
        one 2× step and one skip map per factor of 2."""
        super().__init__()
        c = transformer_dim
        levels = upscale.bit_length() - 1
        if upscale < 4 or 2**levels != upscale or len(skip_channels) < levels:
            raise ValueError(f"upscale {upscale}: a power of 2 ≥ 4 with one skip map per 2× step")
        self.transformer = transformer
        self.num_mask_tokens = NUM_MULTIMASK + 1
        self.iou_token = nn.Embedding(1, c)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, c)
        self.upscale1 = nn.ConvTranspose2d(c, c // 4, kernel_size=2, stride=2)
        self.upscale_norm = LayerNorm2d(c // 4)
        self.upscale2 = nn.ConvTranspose2d(c // 4, c // 8, kernel_size=2, stride=2)
        self.act = nn.GELU()
        # the maps at 2× and 4× the embedding's resolution, then (upscale > 4) the finer ones, coarsest first
        self.skip_coarse = nn.Conv2d(skip_channels[-1], c // 4, kernel_size=1)
        self.skip_fine = nn.Conv2d(skip_channels[-2], c // 8, kernel_size=1)
        finer = skip_channels[len(skip_channels) - levels : -2][::-1]
        # past SAM's 4×: bilinear 2× and a 1×1 convolution. A third 2×2 transposed convolution leaves every pixel a
        # function of its parent cell and its place in the 2×2 block, never of the neighbouring cells, and at full
        # resolution nothing smooths that afterwards (SAM's bilinear resize of the logits does at 4×): flat interiors
        # came out with block-shaped holes, and training was slower (docs/segment.md, "Masks at full resolution")
        self.upscale_extra = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(c // 8, c // 8, kernel_size=1))
            for _ in finer
        )
        self.skip_extra = nn.ModuleList(nn.Conv2d(ch, c // 8, kernel_size=1) for ch in finer)
        self.hypernetworks = nn.ModuleList(
            MLPHead(in_dim=c, hidden_dim=c, out_dim=c // 8, depth=3) for _ in range(self.num_mask_tokens)
        )
        self.iou_head = MLPHead(
            in_dim=c, hidden_dim=iou_head_hidden_dim, out_dim=self.num_mask_tokens, depth=iou_head_depth, sigmoid=True
        )

    def project_skips(self, features: ImageFeatures) -> ImageFeatures:
        """Project the encoder's maps to the upsampler's widths, once per image (not per prompt); the result's
        ``high_res`` is in the order :meth:`forward` adds them, coarsest first."""
        maps = features.high_res[::-1]  # coarsest first
        projected = [self.skip_coarse(maps[0]), self.skip_fine(maps[1])]
        projected += [conv(m) for conv, m in zip(self.skip_extra, maps[2:], strict=False)]
        return ImageFeatures(features.embedding, projected)

    def forward(
        self, features: ImageFeatures, image_pe: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``features``: one row per prompt (already projected, see :meth:`project_skips`); ``image_pe``
        ``1×C×h×w``; ``sparse`` ``P×T×C``; ``dense`` ``P×C×h×w`` → (mask logits ``P×4×m×m``, IoU ``P×4``)."""
        P = sparse.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens[None].expand(P, -1, -1), sparse], dim=1)
        src = features.embedding + dense
        b, c, h, w = src.shape
        hs, src = self.transformer(src, image_pe.expand(P, -1, -1, -1), tokens)
        iou_out, mask_out = hs[:, 0], hs[:, 1 : 1 + self.num_mask_tokens]
        src = src.transpose(1, 2).reshape(b, c, h, w)
        coarse, fine, *finer = features.high_res
        up = self.act(self.upscale_norm(self.upscale1(src) + coarse))
        up = self.act(self.upscale2(up) + fine)
        for upscale, skip in zip(self.upscale_extra, finer, strict=True):
            up = self.act(upscale(up) + skip)
        weights = torch.stack([mlp(mask_out[:, i]) for i, mlp in enumerate(self.hypernetworks)], dim=1)
        masks = (weights @ up.flatten(2)).view(b, self.num_mask_tokens, up.shape[2], up.shape[3])
        return masks, self.iou_head(iou_out)
