"""The two-way transformer of SAM's mask decoder (SAM §3 and appendix A, Fig. 14).

Each block updates both sides: (1) self-attention of the prompt tokens, (2) cross-attention from the tokens to the
image embedding, (3) an MLP on the tokens, (4) cross-attention from the image embedding back to the tokens. The
positional encodings are added again before every attention (queries and keys), so the geometry is never lost;
cross-attentions run in a narrower space (``downsample_rate``) to stay cheap. A final token-to-image attention
follows the blocks. Prompt tokens are few (the output tokens plus a handful of points), so the cost is linear in
the number of image cells.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention with separate query/key/value inputs and an optional narrower internal width.

    q ``B×Nq×C``, k and v ``B×Nk×C`` → ``B×Nq×C``.
    """

    def __init__(self, *, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        inner = embedding_dim // downsample_rate
        if inner % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide {inner}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embedding_dim, inner)
        self.k_proj = nn.Linear(embedding_dim, inner)
        self.v_proj = nn.Linear(embedding_dim, inner)
        self.out_proj = nn.Linear(inner, embedding_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        return x.view(B, N, self.num_heads, C // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        out = F.scaled_dot_product_attention(q, k, v)
        B, H, N, D = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, N, H * D))


class TwoWayAttentionBlock(nn.Module):
    """One block of steps (1)-(4) above; ``skip_first_layer_pe``: the first block's tokens are their own PE."""

    def __init__(
        self, *, embedding_dim: int, num_heads: int, mlp_dim: int, downsample_rate: int, skip_first_layer_pe: bool
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim=embedding_dim, num_heads=num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_token_to_image = Attention(
            embedding_dim=embedding_dim, num_heads=num_heads, downsample_rate=downsample_rate
        )
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = nn.Sequential(nn.Linear(embedding_dim, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, embedding_dim))
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_image_to_token = Attention(
            embedding_dim=embedding_dim, num_heads=num_heads, downsample_rate=downsample_rate
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """Prompt tokens ``P×T×C`` and an image embedding ``P×C×h×w`` (with its PE) → updated tokens and
    image cells (``P×T×C``, ``P×hw×C``)."""

    def __init__(
        self, *, depth: int, embedding_dim: int, num_heads: int, mlp_dim: int, downsample_rate: int = 2
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim=embedding_dim,
                num_heads=num_heads,
                mlp_dim=mlp_dim,
                downsample_rate=downsample_rate,
                skip_first_layer_pe=i == 0,
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(
            embedding_dim=embedding_dim, num_heads=num_heads, downsample_rate=downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        q, k = queries + point_embedding, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
