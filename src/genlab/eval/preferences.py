"""Labelling preference pairs with a judge: InstructGPT's comparison data, made by a program instead of people.

For each prompt the policy samples ``n`` answers; every two distinct answers make a comparison (InstructGPT forms
all C(n, 2) of a prompt, Ouyang et al. 2022 §3.5). Which one is "chosen" is drawn from the Bradley–Terry model
(Bradley & Terry 1952) that reward models and DPO assume of the labeller (InstructGPT eq. 1, DPO eq. 1):

    P(a ≻ b) = σ((s_a − s_b) / T)

with s the judge's scores and T the labeller's noise: T → 0 is a labeller who always agrees with the judge; a large T
is a coin toss. T is on the judge's scale (VADER's is [-1, 1]). Two answers the judge scores exactly the same are
not compared at any T: the coin would be fair and the label pure noise (with VADER most short answers score 0, and
such ties were three quarters of all comparisons). The share of pairs whose chosen answer has the higher score,
"judge agreement", is the accuracy a perfect reward model could reach on these labels (1 at T = 0).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from genlab.data.pairs import Pair
from genlab.errors import GenlabError
from genlab.eval.chat import judge_scores, sample_answers
from genlab.eval.judges import Judge


def bradley_terry_choice(s_a: float, s_b: float, temperature: float, rng: random.Random) -> bool | None:
    """Whether ``a`` is chosen over ``b``: True with probability σ((s_a − s_b) / T) (at T = 0 the higher score
    wins); a tie is None at any T (no preference to record)."""
    if s_a == s_b:
        return None
    if temperature == 0:
        return s_a > s_b
    z = (s_a - s_b) / temperature
    p = 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))  # σ(z) without overflow
    return rng.random() < p


@dataclass
class Labelled:
    """Preference pairs with the judge's (chosen, rejected) scores, and how they were made."""

    pairs: list[tuple[Pair, tuple[float, float]]] = field(default_factory=list)
    prompts: int = 0  # prompts answered
    answers: int = 0  # answers sampled
    mean_score: float = float("nan")  # the judge's mean over every sampled answer
    ties_dropped: int = 0  # comparisons of equal scores

    @property
    def agreement(self) -> float:
        """The share of pairs whose chosen answer the judge scores higher."""
        if not self.pairs:
            return float("nan")
        hits = sum(c > r for _, (c, r) in self.pairs)
        return hits / len(self.pairs)

    def jsonl(self) -> str:
        """The pairs as JSON lines (:mod:`genlab.data.pairs`' format, with the judge's scores)."""
        return "".join(json.dumps(p.to_json(s), ensure_ascii=False) + "\n" for p, s in self.pairs)

    def summary(self) -> dict[str, Any]:
        return {
            "pairs": len(self.pairs),
            "prompts": self.prompts,
            "answers": self.answers,
            "mean_score": self.mean_score,
            "judge_agreement": self.agreement,
            "ties_dropped": self.ties_dropped,
        }


def compare_all(
    prompt: str, texts: Sequence[str], scores: Sequence[float], temperature: float, rng: random.Random
) -> tuple[list[tuple[Pair, tuple[float, float]]], int]:
    """Every comparison of two distinct, non-empty answers to ``prompt`` labelled by the Bradley–Terry coin:
    (pairs with their (chosen, rejected) scores, ties dropped)."""
    seen: dict[str, float] = {}
    for text, score in zip(texts, scores, strict=True):
        if text.strip() and text not in seen:  # identical answers are never paired; empty ones say nothing
            seen[text] = score
    distinct = list(seen.items())
    out, ties = [], 0
    for i in range(len(distinct)):
        for j in range(i + 1, len(distinct)):
            (a, s_a), (b, s_b) = distinct[i], distinct[j]
            a_wins = bradley_terry_choice(s_a, s_b, temperature, rng)
            if a_wins is None:
                ties += 1
                continue
            chosen, rejected = ((a, s_a), (b, s_b)) if a_wins else ((b, s_b), (a, s_a))
            out.append((Pair(prompt, chosen[0], rejected[0]), (chosen[1], rejected[1])))
    return out, ties


def label_pairs(
    model: Any,
    prompts: Sequence[str],
    judge: Judge,
    *,
    n: int = 4,
    temperature: float = 0.1,
    sample_temperature: float = 1.0,
    max_tokens: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> Labelled:
    """Sample ``n`` answers to each prompt from the chat policy ``model`` and label all comparisons of each
    prompt's distinct answers with ``judge`` and the Bradley–Terry coin of temperature ``temperature``. No pair at
    all is a GenlabError (nothing to write)."""
    if n < 2:
        raise GenlabError(f"--n {n}: a comparison needs at least 2 answers per prompt")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise GenlabError(f"--set temperature={temperature}: must be a finite number ≥ 0 (0: the higher score wins)")
    answers = sample_answers(
        model, prompts, n=n, max_tokens=max_tokens, temperature=sample_temperature, seed=seed, progress=progress
    )
    scores = judge_scores(judge, answers)
    rng = random.Random(seed)
    out = Labelled(
        prompts=len(answers.prompts),
        answers=len(answers),
        mean_score=sum(scores) / len(scores),
    )
    rows: dict[int, list[int]] = {}
    for k, i in enumerate(answers.prompt):
        rows.setdefault(i, []).append(k)
    for i, ks in rows.items():
        pairs, ties = compare_all(
            answers.prompts[i], [answers.texts[k] for k in ks], [scores[k] for k in ks], temperature, rng
        )
        out.pairs += pairs
        out.ties_dropped += ties
    if not out.pairs:
        raise GenlabError(
            f"no preference pairs: the {len(answers)} answers to {out.prompts} prompts were identical, empty or "
            "tied in score; sample more or more varied answers (--n, --sample-temperature, more prompts)"
        )
    return out
