"""Comparing chat policies on the reward/KL frontier (the DPO paper's Fig. 2, Rafailov et al. 2023), with best-of-n
sampling of the reference policy as the baseline every RLHF method must beat.

Best-of-n (Stiennon et al. 2020; Gao et al. 2022; the DPO paper's "Best of N"): sample n answers from the reference
π_ref (the SFT model), keep the one a reward model r scores highest. Its KL from π_ref needs no estimate:

    KL(π_bon ‖ π_ref) = log n − (n − 1)/n   nats per answer

(Stiennon et al. 2020; Gao et al. 2022; exact when r never ties, else an upper bound: Beirami et al. 2024). It is
very KL-efficient, hence the baseline.

Every method answers the same held-out prompts, one answer each, sampled at temperature 1 from the full distribution,
and is measured as in :mod:`genlab.eval.chat`: the judge's mean score ± standard error over prompts, the KL from
π_ref (nats per answer; the unbiased sample estimate for a trained policy, the formula above for best-of-n, 0 for
π_ref itself), length, distinct-2 and end rate; and its **win rate** over π_ref's answer to the same prompt as a
*held-out* reward model judges it (one trained on other pairs with another seed), with a 95% Wilson interval. A tie
(the same answer, or the same score) counts one half. A policy is never evaluated with the reward model it was
trained against (nor best-of-n with the one it picks by): it learns that model's errors, and the win rate would
measure how well it exploits them.

A model here is a chat policy or a reward model; this module uses only their methods (``respond_ids``,
``response_logprobs``, ``require_tokenizer``, ``score``) and attributes (``config``, ``family``, ``run``, ``path``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genlab.errors import GenlabError, GenlabWarning
from genlab.eval.chat import Answers, distinct_n, fitting, judge_scores, kl_to_reference, mean_and_se, sample_answers
from genlab.eval.judges import Judge
from genlab.io import read_manifest

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile
EXAMPLES = 8  # prompts whose answers the report shows side by side


def best_of_n_kl(n: int) -> float:
    """KL(π_bon ‖ π_ref) = log n − (n − 1)/n nats per answer of best-of-``n`` (module docstring); 0 at n = 1."""
    if n < 1:
        raise ValueError(f"best-of-n needs n ≥ 1, not {n}")
    return math.log(n) - (n - 1) / n


def wilson_interval(successes: float, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval (Wilson 1927) of a binomial proportion p̂ = ``successes`` / ``trials``:

        (p̂ + z²/2n ± z·sqrt(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n)

    (z = 1.96: 95%). Unlike p̂ ± z·se it stays inside [0, 1] and is not empty at p̂ = 0 or 1. ``successes`` may be
    fractional (ties counted ½). (nan, nan) for no trials."""
    if trials <= 0:
        return float("nan"), float("nan")
    p, z2 = successes / trials, z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class WinRate:
    """Answers compared with the reference's answers to the same prompts: wins, ties (counted ½) and losses."""

    wins: int = 0
    ties: int = 0
    losses: int = 0

    @property
    def trials(self) -> int:
        return self.wins + self.ties + self.losses

    @property
    def rate(self) -> float:
        return (self.wins + self.ties / 2) / self.trials if self.trials else float("nan")

    def figures(self) -> dict[str, Any]:
        low, high = wilson_interval(self.wins + self.ties / 2, self.trials)
        return {"win_rate": self.rate, "win_low": low, "win_high": high, "wins": self.wins, "ties": self.ties,
                "losses": self.losses}  # fmt: skip


def win_rate(
    texts: Sequence[str], scores: Sequence[float], ref_texts: Sequence[str], ref_scores: Sequence[float]
) -> WinRate:
    """Per prompt, an answer against the reference's answer, by a reward model's ``scores``: higher wins; the same
    text or the same score is a tie."""
    out = WinRate()
    for t, s, rt, rs in zip(texts, scores, ref_texts, ref_scores, strict=True):
        if t == rt or s == rs:
            out.ties += 1
        elif s > rs:
            out.wins += 1
        else:
            out.losses += 1
    return out


def pick_best(rewards: torch.Tensor, n: int) -> torch.Tensor:
    """``P×N`` rewards of N answers per prompt → ``P`` column indices: each prompt's highest-reward answer among its
    first ``n`` (the first of equal ones). Nested draws: best-of-4 picks from best-of-16's first four answers."""
    return rewards[:, :n].argmax(1)


@dataclass
class Method:
    """One compared policy: its answer to each prompt and its figures."""

    name: str
    kind: str  # "reference", "run" or "best-of"
    group: str  # methods connected on the frontier: "best-of", or the runs of one family and method
    texts: list[str]
    figures: dict[str, Any]
    n: int | None = None  # best-of-n's n
    path: str | None = None  # the checkpoint folder, for the reference and the runs


@dataclass
class Comparison:
    """Every method's answers to the same ``prompts`` and its figures; ``settings``: how they were made."""

    prompts: list[str]
    methods: list[Method]
    settings: dict[str, Any] = field(default_factory=dict)
    skipped: int = 0

    def to_json(self, examples: int = EXAMPLES) -> dict[str, Any]:
        """The figures, and each method's answer to the first ``examples`` prompts (in the order of ``methods``):
        results.json and ``--json``."""
        rows = [
            {"name": m.name, "kind": m.kind, "group": m.group}
            | ({"n": m.n} if m.n is not None else {})
            | ({"path": m.path} if m.path is not None else {})
            | m.figures
            for m in self.methods
        ]
        shown = [
            {"prompt": p, "answers": [m.texts[i] for m in self.methods]} for i, p in enumerate(self.prompts[:examples])
        ]
        return self.settings | {
            "prompts": len(self.prompts),
            "skipped": self.skipped,
            "methods": rows,
            "examples": shown,
        }


# --- checks -------------------------------------------------------------------------------------------------------
def same_checkpoint(a: Path | str | None, b: Path | str | None) -> bool:
    """Whether two checkpoint folders hold the same model: the same folder, or the same weights (their manifests'
    SHA-256 of model.safetensors), so a copy is recognised too."""
    if a is None or b is None:
        return False
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists() and a.samefile(b):
            return True
    except OSError:
        return False
    digests = [_weights_digest(a), _weights_digest(b)]
    return digests[0] is not None and digests[0] == digests[1]


def _weights_digest(d: Path) -> str | None:
    try:
        return next((f.get("sha256") for f in read_manifest(d)["files"] if f["name"] == "model.safetensors"), None)
    except (GenlabError, OSError):
        return None


def check_comparison(reference: Any, runs: Sequence[tuple[str, Any]], reward: Any, held_out_reward: Any) -> None:
    """GenlabError unless every run reads the reference's tokens within its context, both reward models read them
    too, and the held-out reward model is neither the best-of-n picker nor what any run was trained against."""
    tokens = reference.require_tokenizer().to_json()
    for name, model in runs:
        if model.require_tokenizer().to_json() != tokens:
            raise GenlabError(
                f"{name}: its tokenizer differs from the --reference model's; the KL between policies needs both to "
                "read the same tokens (compare policies trained from the reference)"
            )
        if model.config.block_size > reference.config.block_size:
            raise GenlabError(
                f"{name}: its context ({model.config.block_size} tokens) is longer than the --reference model's "
                f"({reference.config.block_size}); the reference cannot score its answers"
            )
    for option, rm in (("--reward", reward), ("--held-out-reward", held_out_reward)):
        if rm.require_tokenizer().to_json() != tokens:
            raise GenlabError(
                f"{option}: its tokenizer differs from the --reference model's; train the reward model from the "
                "reference (genlab train reward --init REFERENCE)"
            )
    never = "the policy is never evaluated with the reward model it was trained against"
    if reward is held_out_reward or same_checkpoint(reward.path, held_out_reward.path):
        raise GenlabError(
            f"--held-out-reward: it is the --reward model best-of-n picks its answers by; {never} (train another "
            "on other pairs with another seed)"
        )
    for name, model in runs:
        trained = (getattr(model, "run", None) or {}).get("reward")
        if trained and same_checkpoint(trained, held_out_reward.path):
            raise GenlabError(
                f"{name}: it was trained against {trained}, the --held-out-reward model; {never} (train a held-out "
                "reward model on other pairs with another seed)"
            )


def common_prompts(models: Sequence[Any], prompts: Sequence[str], max_tokens: int) -> list[str]:
    """The ``prompts`` every model can answer with ``max_tokens`` (at most its context less one) left for the
    answer; one warning counts those left out, none left is a GenlabError."""
    kept = list(prompts)
    for m in models:
        kept = fitting(m, kept, min(max_tokens, m.config.block_size - 1))
    smallest = min(m.config.block_size for m in models)
    if not kept:
        raise GenlabError(
            f"every prompt is too long: none leaves {max_tokens} of the smallest context ({smallest} tokens) for "
            "its answer; lower --max-tokens or use shorter prompts"
        )
    if len(kept) < len(prompts):
        warnings.warn(
            f"{len(prompts) - len(kept)} of {len(prompts)} prompts left out: too long to leave {max_tokens} of the "
            f"smallest context ({smallest} tokens) for the answer (lower --max-tokens to keep them)",
            GenlabWarning,
            stacklevel=2,
        )
    return kept


# --- the comparison -------------------------------------------------------------------------------------------------
def group_of(model: Any) -> str:
    """Runs drawn connected on the frontier: one family and, for RLHF, one method from one starting policy
    (``rlhf ppo from sft``; a second round tuned from a first round's model is its own line)."""
    method = getattr(model.config, "method", None)
    if not method:
        return model.family
    policy = getattr(model, "run", {}).get("policy")
    return f"{model.family} {method}" + (f" from {Path(str(policy)).name}" if policy else "")


def _figures(answers: Answers, rows: Sequence[int], judged: Sequence[float], kl: tuple[float, float],
             kl_method: str, win: WinRate) -> dict[str, Any]:  # fmt: skip
    """The figures of the answers ``rows`` of ``answers`` (one per prompt): ``judged`` their judge's scores, ``kl``
    (mean, standard error) and how it was found, ``win`` against the reference."""
    texts = [answers.texts[k] for k in rows]
    tokens = answers.tokens()
    score, score_se = mean_and_se(list(judged))
    return {
        "score": score,
        "score_se": score_se,
        "kl": kl[0],
        "kl_se": kl[1],
        "kl_method": kl_method,
        "words": sum(len(t.split()) for t in texts) / len(texts),
        "tokens": sum(tokens[k] for k in rows) / len(rows),
        "distinct_2": distinct_n(texts, 2),
        "end_rate": sum(answers.ended[k] for k in rows) / len(rows),
    } | win.figures()


def _path(model: Any) -> str | None:
    path = getattr(model, "path", None)
    return None if path is None else str(path)


def compare_chat(
    reference: Any,
    runs: Sequence[tuple[str, Any]],
    prompts: Sequence[str],
    judge: Judge,
    reward: Any,
    held_out_reward: Any,
    *,
    best_of: Sequence[int] = (1, 4, 16, 64),
    max_tokens: int = 64,
    seed: int = 0,
    reference_name: str = "reference",
    progress: bool = False,
) -> Comparison:
    """The reference policy, each named run and best-of-n of the reference for each n of ``best_of`` (answers
    picked by ``reward``), measured on the ``prompts`` all of them can answer (module docstring); win rates by
    ``held_out_reward``. The reference (named ``reference_name``) answers with ``seed``, best-of-n draws its pool
    with the next seed."""
    if not best_of or min(best_of) < 1:
        raise GenlabError(f"--best-of {','.join(map(str, best_of))}: each n must be at least 1")
    check_comparison(reference, runs, reward, held_out_reward)
    kept = common_prompts([reference] + [m for _, m in runs], prompts, max_tokens)

    def answer(model: Any, n: int, at: int, desc: str) -> Answers:
        return sample_answers(model, kept, n=n, max_tokens=max_tokens, seed=at, progress=progress, desc=desc)

    def held_out_scores(a: Answers) -> list[float]:
        return held_out_reward.score([a.prompts[i] for i in a.prompt], a.texts).tolist()

    ref = answer(reference, 1, seed, "reference")
    ref_held = held_out_scores(ref)
    every = list(range(len(kept)))
    figures = _figures(ref, every, judge_scores(judge, ref), (0.0, 0.0), "reference", WinRate())
    name = f"{reference_name} (reference)"
    methods = [Method(name, "reference", "reference", ref.texts, figures, path=_path(reference))]
    for name, model in runs:
        a = answer(model, 1, seed, name)
        kl = mean_and_se(kl_to_reference(model, reference, a.prompt_ids, a.ids))
        win = win_rate(a.texts, held_out_scores(a), ref.texts, ref_held)
        figures = _figures(a, every, judge_scores(judge, a), kl, "estimate", win)
        methods.append(Method(name, "run", group_of(model), a.texts, figures, path=_path(model)))
    ns = sorted(set(best_of))
    pool = answer(reference, ns[-1], (seed + 1) % 2**63, f"best-of-{ns[-1]}")
    shape = (len(kept), ns[-1])  # sample_answers keeps each prompt's answers together, in order
    picker = reward.score([pool.prompts[i] for i in pool.prompt], pool.texts).view(shape)
    judged, held = judge_scores(judge, pool), held_out_scores(pool)
    for n in ns:
        rows = [i * shape[1] + int(j) for i, j in enumerate(pick_best(picker, n))]
        win = win_rate([pool.texts[k] for k in rows], [held[k] for k in rows], ref.texts, ref_held)
        figures = _figures(pool, rows, [judged[k] for k in rows], (best_of_n_kl(n), 0.0), "analytic", win)
        methods.append(Method(f"best-of-{n}", "best-of", "best-of", [pool.texts[k] for k in rows], figures, n=n))
    settings = {"judge": judge.name, "max_tokens": max_tokens, "seed": seed, "best_of": ns,
                "ties": "a tie (the same answer or the same held-out reward) counts one half of a win"}  # fmt: skip
    return Comparison(kept, methods, settings, len(prompts) - len(kept))
