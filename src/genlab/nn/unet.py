"""The denoising UNet of DDPM (Ho et al. 2020, Appendix B), sized by a few numbers.

    x_t (B×C×H×W), t (B) [, class y (B)]  →  ε̂ or v̂ (B×C×H×W)

Residual blocks (GroupNorm → SiLU → 3×3 conv) receive the timestep embedding (sinusoidal features of t, then an
MLP) and, for a conditional model, a learned class embedding added to it; self-attention runs at the resolutions
in ``attn_resolutions``; the encoder halves the resolution once per ``channel_mult`` entry after the first and the
decoder mirrors it with skip connections.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of (possibly fractional) timesteps ``t`` (B) → ``B×dim`` (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


class ResBlock(nn.Module):
    """``B×C_in×H×W`` and an embedding ``B×E`` (none when ``emb_dim`` is 0) → ``B×C_out×H×W``."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out) if emb_dim > 0 else None
        self.norm2 = group_norm(c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb is not None:
            h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the H·W positions of ``B×C×H×W``, residual."""

    def __init__(self, channels: int, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W).transpose(-1, -2).unbind(1)
        y = F.scaled_dot_product_attention(q, k, v)  # B×heads×HW×d
        return x + self.proj(y.transpose(-1, -2).reshape(B, C, H, W))


class CrossAttention2d(nn.Module):
    """Attention from the H·W positions of ``B×C×H×W`` to context tokens ``B×L×D`` (e.g. a prompt's token
    features), residual: how a latent diffusion UNet reads the text (Rombach et al. 2022, eq. 3).
    ``mask`` (``B×L``, True = a real token) keeps padding out."""

    def __init__(self, channels: int, context_dim: int, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, C, H, W = x.shape
        q = self.q(self.norm(x)).reshape(B, self.heads, C // self.heads, H * W).transpose(-1, -2)
        k, v = self.kv(context).reshape(B, -1, 2, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        attn_mask = mask[:, None, None, :] if mask is not None else None
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return x + self.proj(y.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """Predicts the noise (or velocity) of ``x_t`` at timestep ``t``, optionally for class ``y``.

    ``y`` is ``B`` class indices (``num_classes`` is the "no class" index used for classifier-free guidance) or
    ``B×(num_classes+1)`` weights over class embeddings (to interpolate between classes).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        base_channels: int = 64,
        channel_mult: tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 2,
        attn_resolutions: tuple[int, ...] = (8,),
        image_size: int = 32,
        dropout: float = 0.0,
        num_classes: int = 0,
        context_dim: int = 0,
    ) -> None:
        super().__init__()
        emb_dim = 4 * base_channels
        self.base_channels = base_channels
        self.num_classes = num_classes

        def attention(ch: int) -> list[nn.Module]:
            return [SelfAttention2d(ch)] + ([CrossAttention2d(ch, context_dim)] if context_dim > 0 else [])

        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None
        self.stem = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips, ch, res = [base_channels], base_channels, image_size
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                block = nn.ModuleList([ResBlock(ch, base_channels * mult, emb_dim, dropout)])
                ch = base_channels * mult
                if res in attn_resolutions:
                    block.extend(attention(ch))
                self.down.append(block)
                skips.append(ch)
            if level < len(channel_mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                skips.append(ch)
                res //= 2
        self.mid = nn.ModuleList(
            [ResBlock(ch, ch, emb_dim, dropout), *attention(ch), ResBlock(ch, ch, emb_dim, dropout)]
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(num_res_blocks + 1):
                block = nn.ModuleList([ResBlock(ch + skips.pop(), base_channels * mult, emb_dim, dropout)])
                ch = base_channels * mult
                if res in attn_resolutions:
                    block.extend(attention(ch))
                self.up.append(block)
            if level > 0:
                self.up.append(
                    nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)])
                )
                res *= 2
        self.head = nn.Sequential(group_norm(ch), nn.SiLU(), nn.Conv2d(ch, in_channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def embed(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.base_channels))
        if self.class_emb is not None:
            if y is None:
                y = torch.full((t.shape[0],), self.num_classes, dtype=torch.long, device=t.device)
            emb = emb + (y.to(emb.dtype) @ self.class_emb.weight if y.is_floating_point() else self.class_emb(y))
        return emb

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``context`` (``B×L×D`` token features, ``context_mask`` ``B×L``) feeds the cross-attention layers."""
        emb = self.embed(t, y)
        ctx = (context, context_mask)
        h = self.stem(x)
        hs = [h]
        for block in self.down:
            h = _run(block, h, emb, ctx)
            hs.append(h)
        h = _run(self.mid, h, emb, ctx)
        for block in self.up:
            if isinstance(block[0], ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            h = _run(block, h, emb, ctx)
        return self.head(h)


def _run(layers: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor, ctx: tuple) -> torch.Tensor:
    for layer in layers:
        if isinstance(layer, ResBlock):
            h = layer(h, emb)
        elif isinstance(layer, CrossAttention2d):
            h = layer(h, *ctx)
        else:
            h = layer(h)
    return h
