"""Chat data as token rows: prompt + answer rows with a mask over the answer (:func:`join_batch`), and the
tokenised data of the RLHF stages — PPO's prompts (:class:`TokenPrompts`) and DPO's preference pairs
(:class:`TokenPairs`), each split into a training and a held-out part by content."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from genlab.data.chat import END, held_out, load_prompts, prompt_text
from genlab.data.pairs import read_pairs
from genlab.errors import GenlabError, GenlabWarning


def join_batch(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt+response token rows, right-padded: ids ``B×T`` and ``B×(T-1)`` a mask over the targets that are
    response tokens (so ``(sequence_logprobs(ids) * mask).sum(1)`` is log p(response | prompt))."""
    rows = [list(p) + list(r) for p, r in zip(prompts, responses, strict=True)]
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    mask = torch.zeros(len(rows), T - 1)
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        ids[i, : len(p) + len(r)] = torch.tensor(rows[i])
        mask[i, len(p) - 1 : len(p) + len(r) - 1] = 1.0
    return ids, mask


@dataclass
class TokenPrompts:
    """PPO's data: user prompts and their template token ids (``prompt_text``)."""

    texts: list[str] = field(default_factory=list)
    ids: list[list[int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class TokenPairs:
    """DPO's data: per pair the prompt's template ids and the chosen and rejected answers' ids (``text + END``)."""

    prompt: list[list[int]] = field(default_factory=list)
    chosen: list[list[int]] = field(default_factory=list)
    rejected: list[list[int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompt)

    def batch(self, rows: list[int]) -> dict[str, torch.Tensor]:
        """The chosen answers then the rejected ones: ids ``2B×T`` and the answer-token mask ``2B×(T-1)``."""
        prompts = [self.prompt[r] for r in rows]
        ids, mask = join_batch(prompts * 2, [self.chosen[r] for r in rows] + [self.rejected[r] for r in rows])
        return {"ids": ids, "mask": mask}


def encode_prompts(source: str, tok: Any, limit: int, fraction: float) -> tuple[TokenPrompts, TokenPrompts, str]:
    """Prompts of at most ``limit`` template tokens (the context an answer leaves), split by content into a
    training and a held-out part; and a line that describes them."""
    texts = load_prompts(source)
    kept = [(t, ids) for t in texts if len(ids := tok.encode(prompt_text(t))) <= limit]
    if not kept:
        raise GenlabError(f"--prompts {source}: every prompt is longer than the {limit} tokens the context leaves "
                          "(block_size − max_new_tokens)")  # fmt: skip
    train, val = TokenPrompts(), TokenPrompts()
    for t, ids in kept:
        part = val if held_out("rlhf:" + t, fraction) else train
        part.texts.append(t)
        part.ids.append(ids)
    if not train:
        raise GenlabError(f"--prompts {source}: every prompt is held out; lower --val-fraction")
    skipped = len(texts) - len(kept)
    describe = f"{len(texts):,} prompts: {len(train):,} to train on, {len(val):,} held out" + (
        f"; {skipped} longer than the context leaves skipped" if skipped else ""
    )
    return train, val, describe


def encode_pairs(source: str, tok: Any, block_size: int, fraction: float) -> tuple[TokenPairs, TokenPairs, str]:
    """Preference pairs that fit a ``block_size`` context, split by (system, prompt) so one prompt's pairs stay
    together; and a line that describes them. Pairs too long are left out with a warning."""
    pairs = read_pairs(source)
    train, val = TokenPairs(), TokenPairs()
    for p in pairs:
        x = tok.encode(prompt_text(p.prompt, p.system))
        w, l_ = tok.encode(p.chosen + END), tok.encode(p.rejected + END)
        if len(x) + max(len(w), len(l_)) > block_size + 1:
            continue
        part = val if held_out(f"rlhf:{p.system}:{p.prompt}", fraction) else train
        part.prompt.append(x)
        part.chosen.append(w)
        part.rejected.append(l_)
    skipped = len(pairs) - len(train) - len(val)
    if skipped:
        warnings.warn(f"{skipped} of {len(pairs)} pairs are longer than the model's context and were left out",
                      GenlabWarning, stacklevel=3)  # fmt: skip
    if not len(train):
        raise GenlabError(f"--data {source}: no pair fits the context and the training part (lower --val-fraction?)")
    return train, val, f"{len(pairs):,} preference pairs: {len(train):,} to train on, {len(val):,} held out"
