"""The n-gram language model: counting, smoothing, backoff.

Formulation (lecture 02, statistical language models): the Markov assumption
p(x_i | x_<i) ≈ p(x_i | x_{i-n+1} … x_{i-1}), estimated from counts, P(fox | quick brown) =
C(quick brown fox) / C(quick brown). Raw counts give zero probability to anything unseen, so the
estimate of order k is interpolated with the one of order k-1, down to the uniform distribution:

    P_k(w | c) = (A_k(c, w) + B_k(c) · P_{k-1}(w | c')) / Z_k(c)            c' = c without its first token

Interpolated modified Kneser–Ney (Chen & Goodman 1998, eq. 17–19; the default):
    A = max(N(c, w) − D(N(c, w)), 0),  B = D₁·N₁(c•) + D₂·N₂(c•) + D₃₊·N₃₊(c•),  Z = Σ_w N(c, w)
    with N the raw count at the highest order and the continuation count N₁₊(• c w) (number of
    distinct left neighbours) below it; discounts from counts of counts: Y = n₁/(n₁ + 2n₂),
    D₁ = 1 − 2Y·n₂/n₁, D₂ = 2 − 3Y·n₃/n₂, D₃₊ = 3 − 4Y·n₄/n₃.
Interpolated Witten–Bell: A = C(c, w), B = N₁₊(c•) (distinct followers), Z = C(c) + N₁₊(c•).
An unseen context (Z = 0) backs off to the lower order entirely. Every P_k sums to 1 over the vocabulary.

Storage: the n-grams of order k are numbered by sorting the keys ``id(c) · V + w``, where id(c) is the
number of the (k-1)-gram c; so any order and vocabulary fit in int64, and lookups are binary searches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from genlab.config import (
    FINITE,
    VOCAB,
    Range,
    check_ranges,
)
from genlab.data.tokenizers import Tokenizer
from genlab.errors import GenlabError
from genlab.models.base import TrainingData
from genlab.models.lm import LanguageModel


@dataclass
class NGramConfig:
    vocab_size: int = 0  # set from the tokenizer
    order: int = 5
    smoothing: str = "kneser-ney"  # kneser-ney | witten-bell
    discount: float = -1.0  # Kneser–Ney: < 0 estimates D₁, D₂, D₃₊ per order; a value in [0, 1] fixes all

    def validate(self) -> None:
        check_ranges(self, "ngram", {"vocab_size": VOCAB, "order": Range(1, 64), "discount": FINITE})
        if self.smoothing not in ("kneser-ney", "witten-bell"):
            raise GenlabError(f"ngram: smoothing={self.smoothing!r}; choose kneser-ney or witten-bell")
        if self.discount > 1.0:
            raise GenlabError(f"ngram: discount={self.discount} must be at most 1")


@dataclass
class _Order:
    """Smoothed statistics of one order: per n-gram numerator A, per context B and Z."""

    keys: np.ndarray  # sorted int64 keys id(c)·V + w
    num: np.ndarray  # A_k per key
    back: np.ndarray  # B_k per context id
    norm: np.ndarray  # Z_k per context id


class NGramLM(LanguageModel):
    family = "ngram"
    Config = NGramConfig
    trains_by_counting = True
    presets = {"tiny": dict(order=3), "small": dict(order=5), "base": dict(order=6)}

    def __init__(self, config: NGramConfig, tokenizer: Tokenizer | None = None) -> None:
        super().__init__(config, tokenizer)
        config.validate()
        self._orders: list[_Order] = []

    # --- training by counting ------------------------------------------------------------------
    def fit_data(self, data: TrainingData) -> None:
        self.fit(data.train.numpy())
        data.run["counts"] = int(data.train.numel())

    def fit(self, ids: Any) -> None:
        """Count every k-gram (k = 1 … order) of the token sequence ``ids`` and build the estimates."""
        t = np.asarray(ids, dtype=np.int64)
        V, n = self.config.vocab_size, self.config.order
        if V < 1:
            raise GenlabError("ngram: vocab_size must be set (it comes from the tokenizer)")
        if len(t) < n:
            raise GenlabError(f"ngram: the text has {len(t)} tokens; order {n} needs at least {n}")
        prev = np.zeros(len(t) + 1, dtype=np.int64)  # id of the empty context at every start
        for k in range(1, n + 1):
            key = prev[: len(t) - k + 1] * V + t[k - 1 :]
            keys, first, inv, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
            if k > 1:  # continuation counts of order k-1: distinct left neighbours of each (k-1)-gram
                cont = np.bincount(prev[first + 1], minlength=len(getattr(self, f"keys_{k - 1}")))
                self.register_buffer(f"cont_{k - 1}", torch.from_numpy(cont.astype(np.int64)))
            self.register_buffer(f"keys_{k}", torch.from_numpy(keys))
            self.register_buffer(f"counts_{k}", torch.from_numpy(counts.astype(np.int64)))
            prev = inv.reshape(-1)
        self._build()

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        n = self.config.order
        need = [f"keys_{k}" for k in range(1, n + 1)] + [f"counts_{k}" for k in range(1, n + 1)]
        need += [f"cont_{k}" for k in range(1, n)]
        missing = [k for k in need if k not in state]
        if missing:
            raise GenlabError(f"ngram checkpoint is missing tensors: {', '.join(missing)}")
        for name in need:
            self.register_buffer(name, state[name].to(torch.int64).cpu())
        self._build()

    def _discounts(self, c: np.ndarray) -> np.ndarray:
        """Per-count discount D(c) for counts ``c`` (modified Kneser–Ney)."""
        if self.config.discount >= 0:
            d = np.full(4, self.config.discount)
        else:
            n1, n2, n3, n4 = (max(int((c == i).sum()), 0) for i in (1, 2, 3, 4))
            y = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
            d1 = 1 - 2 * y * n2 / n1 if n1 else 0.5
            d2 = 2 - 3 * y * n3 / n2 if n2 else d1
            d3 = 3 - 4 * y * n4 / n3 if n3 else d2
            d = np.array([0.0, np.clip(d1, 0.0, 1.0), np.clip(d2, 0.0, 2.0), np.clip(d3, 0.0, 3.0)])
        return d[np.minimum(c, 3)] * (c > 0)

    def _build(self) -> None:
        V, n = self.config.vocab_size, self.config.order
        kn = self.config.smoothing == "kneser-ney"
        self._orders = []
        for k in range(1, n + 1):
            keys = getattr(self, f"keys_{k}").numpy()
            raw = getattr(self, f"counts_{k}").numpy()
            c = getattr(self, f"cont_{k}").numpy() if (kn and k < n) else raw
            ctx = keys // V
            n_ctx = 1 if k == 1 else len(getattr(self, f"keys_{k - 1}"))
            total = np.bincount(ctx, weights=c, minlength=n_ctx)
            if kn:
                d = self._discounts(c)
                num = np.maximum(c - d, 0.0)
                back = np.bincount(ctx, weights=d, minlength=n_ctx)
                norm = total
            else:
                num = c.astype(np.float64)
                back = np.bincount(ctx, weights=(c > 0), minlength=n_ctx).astype(np.float64)
                norm = total + back
            self._orders.append(_Order(keys, num, back, norm))

    # --- scoring -------------------------------------------------------------------------------
    def _lookup(self, k: int, ctx_ids: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Number of the k-gram (context id, token) for each pair, or -1 where unseen."""
        o = self._orders[k - 1]
        key = ctx_ids * self.config.vocab_size + tokens
        pos = np.searchsorted(o.keys, key).clip(max=len(o.keys) - 1)
        found = (ctx_ids >= 0) & (o.keys[pos] == key)
        return np.where(found, pos, -1)

    def _mix(self, k: int, ctx: np.ndarray, gram: np.ndarray, lower: np.ndarray) -> np.ndarray:
        """P_k from P_{k-1} (``lower``) given context ids and k-gram ids (-1 = unseen)."""
        o = self._orders[k - 1]
        safe_ctx = ctx.clip(min=0)
        z = np.where(ctx >= 0, o.norm[safe_ctx], 0.0)
        a = np.where(gram >= 0, o.num[gram.clip(min=0)], 0.0)
        b = o.back[safe_ctx]
        with np.errstate(divide="ignore", invalid="ignore"):
            mixed = (a + b * lower) / z
        return np.where(z > 0, mixed, lower)

    def _check(self) -> None:
        if not self._orders:
            raise GenlabError("ngram: the model has no counts yet (fit it first)")

    def probs(self, ids: np.ndarray) -> np.ndarray:
        """P(ids[i] | ids[:i]) for every position i (position 0 from the unigram level)."""
        self._check()
        t = np.asarray(ids, dtype=np.int64)
        N, V = len(t), self.config.vocab_size
        p = np.full(N, 1.0 / V)
        prev = np.zeros(N + 1, dtype=np.int64)  # ids of the (k-1)-grams starting at each position
        for k in range(1, self.config.order + 1):
            if N - k + 1 <= 0:
                break
            gram = self._lookup(k, prev[: N - k + 1], t[k - 1 :])  # the k-gram starting at j = i-k+1
            p[k - 1 :] = self._mix(k, prev[: N - k + 1], gram, p[k - 1 :])
            prev = gram
        return p

    @torch.inference_mode()
    def token_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        p = self.probs(ids.cpu().numpy())
        return torch.from_numpy(np.log(p[1:])).float()

    def next_distribution(self, history: np.ndarray) -> np.ndarray:
        """P(w | history) for every w in the vocabulary: a length-V vector summing to 1."""
        self._check()
        V, n = self.config.vocab_size, self.config.order
        h = np.asarray(history, dtype=np.int64)[-(n - 1) :] if n > 1 else np.zeros(0, dtype=np.int64)
        p = np.full(V, 1.0 / V)
        everything = np.arange(V, dtype=np.int64)
        for k in range(1, n + 1):
            if k - 1 > len(h):
                break
            ctx = 0  # the id of the context h[-(k-1):], built one token at a time
            for j, token in enumerate(h[len(h) - (k - 1) :], start=1):
                ctx = int(self._lookup(j, np.array([ctx]), np.array([token]))[0])
                if ctx < 0:
                    break
            if ctx < 0:  # unseen context: this order and all higher ones back off
                break
            ctx_v = np.full(V, ctx, dtype=np.int64)
            p = self._mix(k, ctx_v, self._lookup(k, ctx_v, everything), p)
        return p

    # --- decoding ------------------------------------------------------------------------------
    def init_state(self, batch_size: int, *, cache: bool = True) -> list[list[int]]:
        return [[] for _ in range(batch_size)]

    def step(self, ids: torch.Tensor, state: list[list[int]]) -> tuple[torch.Tensor, list[list[int]]]:
        rows = []
        for row, new in zip(state, ids.tolist(), strict=True):
            row.extend(new)
            del row[: max(len(row) - self.config.order + 1, 0)]
            rows.append(np.log(self.next_distribution(np.array(row, dtype=np.int64))))
        return torch.from_numpy(np.stack(rows)).float(), state

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Mean negative log-likelihood (nats/token) of ``y`` given ``x``; no gradient (counting model)."""
        x, y = batch
        rows = [self.token_logprobs(torch.cat([xr[:1], yr])) for xr, yr in zip(x.cpu(), y.cpu(), strict=True)]
        return -torch.cat(rows).mean()
