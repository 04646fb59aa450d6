"""Held-out likelihood of a language model, on a footing that compares every family and tokenizer.

nats_per_token   −(1/N) Σ log p(x_i | x_<i) over the N scored tokens (every token after the first)
perplexity       exp(nats_per_token)
bits_per_char    Σ −log₂ p / characters scored: independent of the tokenizer, so a BPE GPT, a
                 character LSTM and a 5-gram compare directly (nats_per_char = bits_per_char · ln 2)
"""

from __future__ import annotations

import math
from typing import Any

import torch

from genlab.errors import GenlabError


@torch.inference_mode()
def evaluate_text(model: Any, text: str) -> dict[str, Any]:
    """Figures of ``model`` (a :class:`genlab.models.lm.LanguageModel`, or anything with its ``require_tokenizer``,
    ``token_logprobs``, ``device`` and ``family``) on ``text``; each token is scored with all the context the model
    uses."""
    tok = model.require_tokenizer()
    ids = tok.encode(text)
    if len(ids) < 2:
        raise GenlabError("the evaluation text is too short: it needs at least two tokens")
    was_training = model.training
    model.eval()
    lp = model.token_logprobs(torch.tensor(ids, dtype=torch.long, device=model.device))
    model.train(was_training)
    nats = -lp.double().sum().item()
    tokens = len(ids) - 1
    chars = len(text) - len(tok.decode(ids[:1]))
    return {
        "family": model.family,
        "nats_per_token": nats / tokens,
        "bits_per_token": nats / tokens / math.log(2),
        "perplexity": math.exp(nats / tokens),
        "nats_per_char": nats / chars,
        "bits_per_char": nats / chars / math.log(2),
        "tokens": tokens,
        "chars": chars,
    }


@torch.no_grad()
def mean_block_loss(model: Any, ids: torch.Tensor, *, block_size: int, batches: int, batch_size: int) -> float:
    """nanoGPT's validation estimate: mean next-token loss over random windows (fixed seed, so
    successive evaluations use the same windows). Context grows from 0 to block_size inside each window."""
    g = torch.Generator().manual_seed(1234)
    offsets = torch.arange(block_size + 1)
    total = 0.0
    for _ in range(batches):
        starts = torch.randint(ids.numel() - block_size - 1, (batch_size,), generator=g)
        w = ids[starts[:, None] + offsets].to(model.device)
        total += model.loss((w[:, :-1], w[:, 1:])).item()
    return total / batches
