"""The image encoder: an image → a low-resolution embedding, run once per image (SAM §3, "Image encoder").

SAM's encoder is an MAE-pretrained ViT-H that turns a 1024×1024 image into a 64×64×256 embedding (stride 16). At
genlab's scale (64×64 pixels, a CPU), the encoder is hierarchical, as in SAM 2 (Ravi et al. 2024, §4): convolution
stages halve the resolution and keep their outputs as high-resolution features; a 2×2 patch embedding then feeds a
ViT at stride ``2 ** (stages + 1)`` (8 with two stages); SAM's neck (1×1 and 3×3 convolutions with LayerNorm) maps
the ViT's tokens to the embedding the mask decoder attends to. The mask decoder adds the stage outputs back while
it upsamples (SAM 2's skip connections), which keeps mask edges crisp at a coarse embedding; a decoder that draws
masks at the image's own resolution also gets a full-resolution ``stem`` (one 3×3 convolution of the pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.transformer import MLP


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a ``B×C×H×W`` tensor (SAM's ``LayerNorm2d``)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # through channels-last: one fused layer_norm instead of eight element-wise passes
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class ConvStage(nn.Module):
    """A stride-2 3×3 convolution, then a residual 3×3 convolution. ``B×C_in×H×W → B×C_out×H/2×W/2``."""

    def __init__(self, *, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1), LayerNorm2d(out_channels), nn.GELU()
        )
        self.conv = nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, padding=1), LayerNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return F.gelu(x + self.conv(x))


class ViTBlock(nn.Module):
    """Pre-LayerNorm transformer block with global (non-causal) self-attention. ``B×N×C → B×N×C``."""

    def __init__(self, *, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(n_embd=dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
        x = x + self.proj(y)
        return x + self.mlp(self.norm2(x))


@dataclass
class ImageFeatures:
    """What the encoder computes once per image and the decoder reuses for every prompt.

    embedding: ``B×C×h×w`` (h = H / stride); high_res: the stage outputs, finest first (``B×c_i×H/2^(i+1)×…``),
    led by the full-resolution stem output when the encoder has one.
    """

    embedding: torch.Tensor
    high_res: list[torch.Tensor]

    def select(self, index: torch.Tensor) -> ImageFeatures:
        """The features of the images ``index`` (``P`` image numbers → ``P×…``)."""
        return ImageFeatures(self.embedding[index], [f[index] for f in self.high_res])


class ImageEncoder(nn.Module):
    """``B×3×S×S`` images in [0, 1] → :class:`ImageFeatures` with a ``B×out_dim×S/stride×S/stride`` embedding."""

    def __init__(
        self,
        *,
        image_size: int,
        stage_channels: tuple[int, ...],
        dim: int,
        depth: int,
        heads: int,
        out_dim: int,
        stem_channels: int = 0,
    ) -> None:
        super().__init__()
        chans = (3, *stage_channels)
        # stride-1 features for a decoder that upsamples to the image's resolution (0: none)
        self.stem = (
            nn.Sequential(nn.Conv2d(3, stem_channels, 3, padding=1), LayerNorm2d(stem_channels), nn.GELU())
            if stem_channels
            else None
        )
        self.stages = nn.ModuleList(
            ConvStage(in_channels=a, out_channels=b) for a, b in zip(chans[:-1], chans[1:], strict=True)
        )
        self.stride = 2 ** (len(stage_channels) + 1)
        # the widths of ImageFeatures.high_res, finest first
        self.high_res_channels = ([stem_channels] if stem_channels else []) + list(stage_channels)
        grid = image_size // self.stride
        self.patch_embed = nn.Conv2d(stage_channels[-1], dim, kernel_size=2, stride=2)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(ViTBlock(dim=dim, heads=heads) for _ in range(depth))
        self.neck = nn.Sequential(  # SAM's neck
            nn.Conv2d(dim, out_dim, 1, bias=False),
            LayerNorm2d(out_dim),
            nn.Conv2d(out_dim, out_dim, 3, padding=1, bias=False),
            LayerNorm2d(out_dim),
        )
        # images are normalized inside the model, so every caller passes plain [0, 1] pixels
        self.register_buffer("pixel_mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> ImageFeatures:
        x = (images - self.pixel_mean) / self.pixel_std
        high_res = [] if self.stem is None else [self.stem(x)]
        for stage in self.stages:
            x = stage(x)
            high_res.append(x)
        x = self.patch_embed(x)
        B, C, h, w = x.shape
        x = x.flatten(2).transpose(1, 2) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        embedding = self.neck(x.transpose(1, 2).reshape(B, C, h, w))
        return ImageFeatures(embedding, high_res)
