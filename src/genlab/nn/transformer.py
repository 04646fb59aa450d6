"""Pre-LayerNorm transformer block (GPT-2): x + Attn(LN(x)), then x + MLP(LN(x))."""

from __future__ import annotations

import torch
from torch import nn

from genlab.nn.attention import CausalSelfAttention, KVCache


class MLP(nn.Module):
    """Position-wise feed-forward network ``C → 4C → C`` with GELU. ``B×T×C → B×T×C``."""

    def __init__(self, *, n_embd: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.act = nn.GELU()
        self.proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """One decoder block; ``cache`` (optional) holds this block's keys and values."""

    def __init__(self, *, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd=n_embd, n_head=n_head, dropout=dropout, bias=bias)
        self.ln2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd=n_embd, dropout=dropout, bias=bias)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))
