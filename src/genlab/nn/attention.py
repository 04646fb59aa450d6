"""Multi-head causal self-attention with an optional key/value cache.

Symbols (Vaswani et al. 2017, eq. 1): for queries Q, keys K and values V of head size d,
Attention(Q, K, V) = softmax(Q Kᵀ / √d) V; a causal mask lets position i attend to j ≤ i only.
The cache holds K and V of every token seen so far, so generating one more token costs one
query against the cached keys instead of recomputing the whole prefix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KVCache:
    """Preallocated keys and values of one attention layer: each ``B×H×max_len×D``."""

    def __init__(
        self, batch: int, n_head: int, max_len: int, head_dim: int, *, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.k = torch.empty(batch, n_head, max_len, head_dim, device=device, dtype=dtype)
        self.v = torch.empty_like(self.k)
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only batch ``rows`` (an index tensor), in that order; the capacity stays."""
        for name in ("k", "v"):
            old = getattr(self, name)
            new = old.new_empty(len(rows), *old.shape[1:])
            new[:, :, : self.length] = old[rows, :, : self.length]
            setattr(self, name, new)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v`` (``B×H×T×D``) after the cached ones; return all keys and values so far."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.capacity:
            raise ValueError(f"KV cache overflow: {end} > {self.capacity} positions")
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class CausalSelfAttention(nn.Module):
    """Causal multi-head self-attention through ``F.scaled_dot_product_attention``.

    Input and output are ``B×T×C`` with ``C = n_head × head_dim``.
    """

    def __init__(self, *, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not a multiple of n_head={n_head}")
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.dropout = dropout
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(k, v)
        p = self.dropout if self.training else 0.0
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif T == 1:  # one new query may attend to every cached position
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:  # a chunk after a cached prefix: query i sees keys 0 .. past + i
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_drop(self.proj(y))
