"""GPT: a decoder-only transformer language model (Radford et al. 2018/2019).

Formulation: p(x) = Π_i p(x_i | x_{i-k} … x_{i-1}), with k = ``block_size`` the context window.
Representation (lecture 02, "GPT — pre-training"):
    h⁰ = e_x Wᵉ + Wᵖ                    token embedding Wᵉ (V×d) plus learned positions Wᵖ (k×d)
    hˡ = TransformerBlock(hˡ⁻¹)         pre-LayerNorm blocks, causal self-attention, l = 1 … L
    P(x_i | ·) = softmax(hᴸ Wᵉᵀ)        the output layer is tied to the token embedding
Objective: the maximum-likelihood pre-training loss L^PT = Σ_i log P(x_i | x_{i-k} … x_{i-1}).
Initialization as GPT-2: N(0, 0.02), residual projections scaled by 1/√(2L).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import (
    CONTEXT,
    DEPTH,
    PROBABILITY,
    VOCAB,
    WIDTH,
    check_ranges,
)
from genlab.data.tokenizers import Tokenizer
from genlab.errors import GenlabError
from genlab.models.lm import LanguageModel
from genlab.nn.attention import KVCache
from genlab.nn.transformer import Block


@dataclass
class GPTConfig:
    vocab_size: int = 0  # set from the tokenizer
    block_size: int = 128  # context window k
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False

    def validate(self) -> None:
        check_ranges(
            self,
            "gpt",
            {
                "vocab_size": VOCAB,
                "block_size": CONTEXT,
                "n_layer": DEPTH,
                "n_head": DEPTH,
                "n_embd": WIDTH,
                "dropout": PROBABILITY,
            },
        )
        if self.n_embd % self.n_head:
            raise GenlabError(f"gpt: n_embd={self.n_embd} must be a multiple of n_head={self.n_head}")


@dataclass
class GPTState:
    """Decoding state: the token history ``B×L`` and, when cached, one KVCache per block."""

    tokens: torch.Tensor
    caches: list[KVCache] | None = field(default=None)


class GPT(LanguageModel):
    family = "gpt"
    Config = GPTConfig
    presets = {
        # nanoGPT's CPU recipe (about a minute or two on a laptop).
        "tiny": dict(
            n_layer=4,
            n_head=4,
            n_embd=128,
            block_size=64,
            dropout=0.0,
            batch_size=12,
            lr=1e-3,
            min_lr=1e-4,
            steps=2000,
            warmup=100,
        ),
        # The shipped default's shape (it trained 8,000 steps: 26 minutes on 2 CPU cores).
        "small": dict(
            n_layer=4,
            n_head=4,
            n_embd=192,
            block_size=128,
            dropout=0.0,
            batch_size=24,
            lr=2e-3,
            min_lr=2e-4,
            steps=3000,
            warmup=100,
        ),
        # nanoGPT's GPU recipe (10.7 M parameters).
        "base": dict(
            n_layer=6,
            n_head=6,
            n_embd=384,
            block_size=256,
            dropout=0.2,
            batch_size=64,
            lr=1e-3,
            min_lr=1e-4,
            steps=5000,
            warmup=100,
        ),
    }

    def __init__(self, config: GPTConfig, tokenizer: Tokenizer | None = None) -> None:
        super().__init__(config, tokenizer)
        config.validate()
        if config.vocab_size < 1:
            raise GenlabError("gpt: vocab_size must be set (it comes from the tokenizer)")
        c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(n_embd=c.n_embd, n_head=c.n_head, dropout=c.dropout, bias=c.bias) for _ in range(c.n_layer)
        )
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: softmax(h Wᵉᵀ)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # residual projections, GPT-2's 1/√(2L)
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def max_context(self) -> int:
        return self.config.block_size

    def sampling_bytes(self, n: int, tokens: int = 0) -> int:
        c = self.config  # plus the KV cache: keys and values of every layer at every position of context
        return super().sampling_bytes(n, tokens) + n * 8 * c.n_layer * c.n_embd * c.block_size  # preallocated

    def hidden(self, idx: torch.Tensor, caches: list[KVCache] | None = None) -> torch.Tensor:
        """``B×T`` ids → ``B×T×C`` final hidden states; with caches, positions continue after them."""
        T = idx.shape[1]
        start = caches[0].length if caches else 0
        if start + T > self.config.block_size:
            raise GenlabError(f"gpt: {start + T} positions exceed block_size={self.config.block_size}")
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for i, block in enumerate(self.blocks):
            x = block(x, caches[i] if caches else None)
        return self.ln_f(x)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.hidden(idx))

    # --- decoding ------------------------------------------------------------------------------
    def init_state(self, batch_size: int, *, cache: bool = True) -> GPTState:
        tokens = torch.empty(batch_size, 0, dtype=torch.long, device=self.device)
        return GPTState(tokens, self._new_caches(batch_size) if cache else None)

    def _new_caches(self, batch_size: int) -> list[KVCache]:
        c = self.config
        p = self.wte.weight
        return [
            KVCache(batch_size, c.n_head, c.block_size, c.n_embd // c.n_head, device=p.device, dtype=p.dtype)
            for _ in range(c.n_layer)
        ]

    def keep_rows(self, state: GPTState, rows: torch.Tensor) -> GPTState:
        """The decoding state of batch ``rows`` only (a batched decode drops the rows that have finished)."""
        state.tokens = state.tokens[rows]
        for cache in state.caches or ():
            cache.keep(rows)
        return state

    def step(self, ids: torch.Tensor, state: GPTState) -> tuple[torch.Tensor, GPTState]:
        """Feed ``B×T`` ids; return ``B×V`` logits for the next token.

        Without a cache the last ``block_size`` tokens are recomputed each step (nanoGPT's way).
        With one, a new token costs one position. When the window is full the cache is rebuilt from
        the last ¾ of the window, because learned absolute positions cannot slide in place.
        """
        state.tokens = torch.cat([state.tokens, ids], dim=1)
        k = self.config.block_size
        if state.caches is None:
            return self.logits(state.tokens[:, -k:])[:, -1], state
        if state.caches[0].length + ids.shape[1] > k:
            state.caches = self._new_caches(ids.shape[0])
            ids = state.tokens[:, -(k - k // 4) :]
        h = self.hidden(ids, state.caches)
        return self.lm_head(h[:, -1]), state

    @torch.inference_mode()
    def token_logprobs(self, ids: torch.Tensor, batch_windows: int = 32) -> torch.Tensor:
        """log p(ids[i] | ids[:i]) for i ≥ 1, in sliding windows of ``block_size`` with stride k/2,
        so every token after the first window sees at least half a window of context."""
        k = self.config.block_size
        ids = ids.to(self.device)
        N = ids.numel()
        out = torch.empty(N - 1, device=self.device)
        stride = max(1, k // 2)
        # Window w covers ids[s : s+k]; it scores targets from position max(s+1, s+k-stride).
        starts = list(range(0, max(N - k, 0) + 1, stride))
        if starts[-1] + k < N:
            starts.append(N - k)
        for b in range(0, len(starts), batch_windows):
            chunk = starts[b : b + batch_windows]
            width = min(k, N)
            x = torch.stack([ids[s : s + width] for s in chunk])
            lp = F.log_softmax(self.logits(x[:, :-1]).float(), dim=-1)
            tgt = lp.gather(-1, x[:, 1:, None])[..., 0]  # tgt[j, t] = log p(x[j, t+1] | x[j, :t+1])
            for j, s in enumerate(chunk):
                prev_end = starts[b + j - 1] + width if b + j > 0 else 0  # first position not yet scored
                first = max(s + 1, prev_end)
                out[first - 1 : s + width - 1] = tgt[j, first - s - 1 :]
        return out
