"""LSTM language model: a recurrent network that carries a summary of the whole prefix.

Formulation: p(x) = Π_i p(x_i | x_<i), with the prefix summarized by the recurrent state.
Representation (lecture 02): an RNN updates h_t = σ(U x_t + V h_{t-1} + b); the LSTM (Hochreiter &
Schmidhuber 1997) adds a cell state c_t and forget/input/output gates so gradients survive long
spans: c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t, h_t = o_t ⊙ tanh(c_t). Here: embedding → stacked LSTM →
linear read-out to next-token logits.
Objective: cross-entropy of the next token; training unrolls ``block_size`` steps from a zero state.
Inference: the state carries across any length of text, so context is unbounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import (
    CONTEXT,
    DEPTH,
    PROBABILITY,
    VOCAB,
    WIDTH,
    Range,
    check_ranges,
)
from genlab.data.tokenizers import Tokenizer
from genlab.errors import GenlabError
from genlab.models.lm import LanguageModel

State = tuple[torch.Tensor, torch.Tensor] | None


@dataclass
class LSTMConfig:
    vocab_size: int = 0  # set from the tokenizer
    block_size: int = 128  # steps unrolled in training (truncated back-propagation through time)
    n_layer: int = 2
    n_embd: int = 128
    n_hidden: int = 512
    dropout: float = 0.0

    def validate(self) -> None:
        check_ranges(
            self,
            "lstm",
            {
                "vocab_size": VOCAB,
                "block_size": CONTEXT,
                "n_layer": DEPTH,
                "n_embd": WIDTH,
                "n_hidden": Range(1, 65536),
                "dropout": PROBABILITY,
            },
        )


class LSTMLM(LanguageModel):
    family = "lstm"
    Config = LSTMConfig
    presets = {
        "tiny": dict(
            n_layer=1,
            n_embd=64,
            n_hidden=256,
            block_size=64,
            batch_size=16,
            lr=3e-3,
            min_lr=3e-4,
            steps=2000,
            warmup=50,
            weight_decay=0.0,
        ),
        "small": dict(
            n_layer=2,
            n_embd=128,
            n_hidden=512,
            block_size=128,
            batch_size=32,
            lr=3e-3,
            min_lr=3e-4,
            steps=3000,
            warmup=100,
            weight_decay=0.0,
        ),
        "base": dict(
            n_layer=3,
            n_embd=256,
            n_hidden=1024,
            block_size=256,
            dropout=0.2,
            batch_size=64,
            lr=2e-3,
            min_lr=2e-4,
            steps=5000,
            warmup=100,
            weight_decay=0.0,
        ),
    }

    def __init__(self, config: LSTMConfig, tokenizer: Tokenizer | None = None) -> None:
        super().__init__(config, tokenizer)
        config.validate()
        if config.vocab_size < 1:
            raise GenlabError("lstm: vocab_size must be set (it comes from the tokenizer)")
        c = config
        self.emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.lstm = nn.LSTM(
            c.n_embd, c.n_hidden, c.n_layer, batch_first=True, dropout=c.dropout if c.n_layer > 1 else 0.0
        )
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.n_hidden, c.vocab_size)

    def unroll(self, idx: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """``B×T`` ids and a state → ``B×T×V`` logits and the state after the last token."""
        h, state = self.lstm(self.drop(self.emb(idx)), state)
        return self.head(self.drop(h)), state

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.unroll(idx)[0]

    def init_state(self, batch_size: int, *, cache: bool = True) -> State:
        return None

    def step(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        logits, state = self.unroll(ids, state)
        return logits[:, -1], state

    @torch.inference_mode()
    def token_logprobs(self, ids: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        """log p(ids[i] | ids[:i]) for i ≥ 1. The text is cut into up to 32 contiguous streams run in
        parallel, each carrying its state from its own start (a few tokens of context lost at 31 seams)."""
        ids = ids.to(self.device)
        M = ids.numel() - 1
        S = max(1, min(32, M // 4096))
        L = -(-M // S)
        inp = torch.zeros(S * L, dtype=torch.long, device=self.device)
        tgt = torch.zeros(S * L, dtype=torch.long, device=self.device)
        inp[:M], tgt[:M] = ids[:-1], ids[1:]
        inp, tgt = inp.view(S, L), tgt.view(S, L)
        out = torch.empty(S, L, device=self.device)
        state: State = None
        for t0 in range(0, L, chunk):
            logits, state = self.unroll(inp[:, t0 : t0 + chunk], state)
            lp = F.log_softmax(logits.float(), dim=-1)
            out[:, t0 : t0 + chunk] = lp.gather(-1, tgt[:, t0 : t0 + chunk, None])[..., 0]
        return out.view(-1)[:M]
