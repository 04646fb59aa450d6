"""Measuring a chat policy: sample answers to held-out prompts and report what RLHF trades off.

- the judge's mean score of the answers (the reward being optimized), with its standard error over prompts;
- the KL divergence from a reference policy (the SFT model the policy started from), in nats per answer:
  KL(π‖π_ref) = E_{y∼π(·|x)} Σ_t [log π(y_t | x, y_<t) − log π_ref(y_t | x, y_<t)] (InstructGPT eq. 2's penalty;
  the x axis of the DPO paper's reward/KL frontier, Fig. 2). Averaging the summed log-ratio over answers sampled
  from π at temperature 1 (no top-k or top-p) is an unbiased estimate of it;
- what a policy gives up when it over-optimizes: diversity (distinct-2, Li et al. 2016: distinct word bigrams over
  all bigrams of all answers), answer length, and the share of answers it closes with ``<|end|>``.

A model here is a chat policy (:class:`genlab.models.chat.ChatLM`); this module uses only its methods
(``prompt_ids``, ``answer_batch``, ``response_logprobs``, ``end_id``), so that ``eval`` stays below ``models``.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from genlab.data.chat import Message, prompt_text
from genlab.errors import GenlabError, GenlabWarning
from genlab.eval.judges import Judge


@dataclass
class Answers:
    """Sampled answers, one row per answer; ``prompt[k]`` indexes ``prompts`` (the prompts answered)."""

    prompts: list[str]
    prompt: list[int]
    prompt_ids: list[list[int]]  # the chat template's token ids asking for answer k
    texts: list[str]
    ids: list[list[int]]  # answer k's token ids, up to and including the special token that closed it
    closed: list[bool]  # a special token closed it (False: it ran out of tokens)
    ended: list[bool]  # that token was <|end|>
    skipped: int = 0  # prompts left out: too long to leave room for the answer

    def __len__(self) -> int:
        return len(self.texts)

    def tokens(self) -> list[int]:
        """Each answer's length in tokens, the closing special token not counted."""
        return [len(ids) - closed for ids, closed in zip(self.ids, self.closed, strict=True)]


def fitting(model: Any, prompts: Sequence[str], max_tokens: int) -> list[str]:
    """The ``prompts`` whose template leaves ``max_tokens`` positions of ``model``'s context for the answer."""
    tok, room = model.require_tokenizer(), model.config.block_size - max_tokens
    return [p for p in prompts if len(tok.encode(prompt_text(p))) <= room]


def sample_answers(
    model: Any,
    prompts: Sequence[str],
    *,
    n: int = 1,
    max_tokens: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
    progress: bool = False,
    desc: str = "prompts",
    batch_rows: int = 256,
) -> Answers:
    """``n`` answers to each prompt, sampled at ``temperature`` from the full distribution (no top-k or top-p).

    A prompt too long to leave ``max_tokens`` (at most the context less one) for its answer is left out, with one
    warning counting them; none left is a GenlabError. Repeatable for a ``seed`` on one device. ``progress``: a bar
    on stderr named ``desc``. Up to ``batch_rows`` answers (of several prompts) are decoded as one batch."""
    from tqdm import tqdm

    from genlab.runtime import make_generator

    max_tokens = min(max_tokens, model.config.block_size - 1)
    kept = fitting(model, prompts, max_tokens)
    skipped = len(prompts) - len(kept)
    if not kept:
        raise GenlabError(
            f"every prompt is too long: none leaves {max_tokens} of the model's {model.config.block_size} "
            "context positions for its answer; lower --max-tokens or use shorter prompts"
        )
    if skipped:
        warnings.warn(
            f"{skipped} of {len(prompts)} prompts left out: too long to leave {max_tokens} of the model's "
            f"{model.config.block_size} context positions for the answer (lower --max-tokens to keep them)",
            GenlabWarning,
            stacklevel=2,
        )
    end = model.end_id()
    g = make_generator(seed, model.device)
    out = Answers(kept, [], [], [], [], [], [], skipped)
    asks = [model.prompt_ids([Message("user", p)], reserve=max_tokens) for p in kept]
    rows = [i for i in range(len(kept)) for _ in range(n)]
    bar = tqdm(total=len(rows), desc=desc, unit="answer", file=sys.stderr, disable=not progress)
    for start in range(0, len(rows), batch_rows):  # many prompts decode together: one batched step per position
        chunk = rows[start : start + batch_rows]
        answers = model.answer_batch([asks[i] for i in chunk], max_tokens=max_tokens, temperature=temperature,
                                     generator=g)  # fmt: skip
        for i, (text, new, closed) in zip(chunk, answers, strict=True):
            out.prompt.append(i)
            out.prompt_ids.append(asks[i])
            out.texts.append(text)
            out.ids.append(new)
            out.closed.append(closed)
            out.ended.append(closed and new[-1] == end)
        bar.update(len(chunk))
    bar.close()
    return out


def judge_scores(judge: Judge, answers: Answers) -> list[float]:
    """The judge's score of each answer, given the prompt it answers."""
    return judge([answers.prompts[i] for i in answers.prompt], answers.texts)


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct word n-grams over all word n-grams of all ``texts`` (Li et al. 2016), in [0, 1]: 1 when no n-gram
    repeats; nan when no text has ``n`` words. Words are whitespace-separated and lower-cased."""
    grams = []
    for text in texts:
        words = text.lower().split()
        grams += [tuple(words[k : k + n]) for k in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def check_reference(model: Any, reference: Any, where: str = "--reference") -> None:
    """A reference policy must read the same tokens as ``model`` (the same tokenizer) and take its answers."""
    if reference.require_tokenizer().to_json() != model.require_tokenizer().to_json():
        raise GenlabError(
            f"{where}: its tokenizer differs from the model's; a KL between policies needs both to read the same "
            "tokens (use the SFT model the policy was trained from)"
        )
    if reference.config.block_size < model.config.block_size:
        raise GenlabError(
            f"{where}: its context ({reference.config.block_size} tokens) is shorter than the model's "
            f"({model.config.block_size}); it cannot score the model's answers"
        )


@torch.no_grad()
def kl_to_reference(
    model: Any,
    ref: Any,
    prompt_ids: Sequence[Sequence[int]],
    answer_ids: Sequence[Sequence[int]],
    *,
    batch_size: int = 32,
) -> list[float]:
    """Per answer, Σ_t [log π(y_t | x, y_<t) − log π_ref(y_t | x, y_<t)] in nats: the log-ratio of ``model`` (π)
    to ``ref`` (π_ref) over the answer's tokens. For answers sampled from π at temperature 1 their mean is an
    unbiased estimate of KL(π‖π_ref) per answer (each term alone may be negative)."""
    out: list[float] = []
    for s in range(0, len(answer_ids), batch_size):
        p, a = prompt_ids[s : s + batch_size], answer_ids[s : s + batch_size]
        ratio = model.response_logprobs(p, a) - ref.response_logprobs(p, a).to(model.device)
        out += ratio.tolist()
    return out


def mean_and_se(values: Sequence[float], groups: Sequence[int] | None = None) -> tuple[float, float]:
    """The mean of ``values`` and its standard error; with ``groups`` (the prompt of each value) the error is over
    the groups' means, since answers to one prompt are not independent. nan where it is undefined."""
    if not values:
        return float("nan"), float("nan")
    t = torch.tensor(values, dtype=torch.float64)
    if groups is not None:
        g = torch.tensor(groups)
        ids, g = torch.unique(g, return_inverse=True)
        sums = torch.zeros(len(ids), dtype=torch.float64).index_add_(0, g, t)
        t = sums / torch.bincount(g, minlength=len(ids))
    se = float(t.std() / math.sqrt(len(t))) if len(t) > 1 else float("nan")
    return float(torch.tensor(values, dtype=torch.float64).mean()), se


def evaluate_chat(
    model: Any,
    prompts: Sequence[str],
    judge: Judge,
    *,
    reference: Any = None,
    n_samples: int = 1,
    max_tokens: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """The figures of ``model`` (module docstring) on ``n_samples`` answers to each prompt, sampled at temperature
    1; ``kl`` (nats per answer) where a ``reference`` policy is given."""
    if reference is not None:
        check_reference(model, reference)
    answers = sample_answers(model, prompts, n=n_samples, max_tokens=max_tokens, seed=seed, progress=progress)
    score, score_se = mean_and_se(judge_scores(judge, answers), answers.prompt)
    figures: dict[str, Any] = {
        "prompts": len(answers.prompts),
        "answers": len(answers),
        "judge": judge.name,
        "score": score,
        "score_se": score_se,
    }
    if reference is not None:
        figures["kl"], figures["kl_se"] = mean_and_se(
            kl_to_reference(model, reference, answers.prompt_ids, answers.ids), answers.prompt
        )
    figures |= {
        "words": sum(len(t.split()) for t in answers.texts) / len(answers),
        "tokens": sum(answers.tokens()) / len(answers),
        "distinct_2": distinct_n(answers.texts, 2),
        "end_rate": sum(answers.ended) / len(answers),
    }
    return figures
