"""Judges: programs that score an answer to a prompt, standing in for the human labellers of RLHF.

A judge maps (prompt, response) to a number, higher meaning better. It labels preference pairs
(``genlab label pairs``), is the reward of a policy's evaluation (``genlab eval chat``), and is the ground truth a
reward model is measured against. ``--judge`` names one:

    sentiment        VADER's compound sentiment of the response, in [-1, 1] (Hutto & Gilbert 2014): the "controlled
                     sentiment generation" task of the DPO paper (Rafailov et al. 2023, §6.1), minRLHF's reward
    length           the response's length in words (whitespace-separated): a judge a policy can easily game
    module:function  your own: ``function(prompt: str, response: str) -> float`` from ``module`` (a .py file in the
                     current folder, or an installed module), called once per pair
"""

from __future__ import annotations

import importlib
import math
import numbers
import os
import sys
from collections.abc import Callable, Sequence
from functools import cache

from genlab.errors import GenlabError

BUILT_IN = ("sentiment", "length")


class Judge:
    """A named score of (prompt, response) pairs: ``judge(prompts, responses)`` → one float per pair."""

    def __init__(self, name: str, score: Callable[[str, str], object]) -> None:
        self.name = name
        self._score = score

    def __repr__(self) -> str:
        return f"Judge({self.name!r})"

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts for {len(responses)} responses")
        return [self._checked(k, p, r) for k, (p, r) in enumerate(zip(prompts, responses, strict=True))]

    def _checked(self, k: int, prompt: str, response: str) -> float:
        try:
            value = self._score(prompt, response)
        except Exception as e:  # noqa: BLE001 - the user's code: its failure is reported, not a genlab bug
            raise GenlabError(
                f"--judge {self.name}: raised {type(e).__name__} on pair {k + 1} ({e}) for response {response[:40]!r}"
            ) from None
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise GenlabError(
                f"--judge {self.name}: returned {value!r:.40} for pair {k + 1}; a judge returns a finite number"
            )
        return float(value)


@cache
def _vader() -> Callable[[str], dict[str, float]]:
    """VADER's analyzer, built once (it reads its lexicon from disk)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer().polarity_scores


def sentiment(prompt: str, response: str) -> float:
    """VADER's compound score of ``response`` in [-1, 1]: the normalized sum of its words' valences."""
    return _vader()(response)["compound"]


def length(prompt: str, response: str) -> float:
    """The number of whitespace-separated words of ``response``."""
    return float(len(response.split()))


def load_judge(spec: str) -> Judge:
    """The judge ``spec`` names: ``sentiment``, ``length`` or ``module:function`` (imported with the current
    folder on the import path, as a script of the user's would be). Anything that cannot be one is a one-line
    GenlabError naming ``spec``."""
    if spec == "sentiment":
        return Judge(spec, sentiment)
    if spec == "length":
        return Judge(spec, length)
    module, sep, name = spec.partition(":")
    if not sep:
        raise GenlabError(
            f"--judge {spec!r}: unknown judge; the built-in ones are {', '.join(BUILT_IN)}, "
            "or name your own as module:function"
        )
    module, name = module.strip(), name.strip()
    if not module or not name:
        raise GenlabError(f"--judge {spec}: expected module:function, e.g. myjudge:score")
    function = getattr(_import(spec, module), name, None)
    if function is None:
        raise GenlabError(f"--judge {spec}: {module} has no function {name!r}")
    if not callable(function):
        raise GenlabError(f"--judge {spec}: {module}.{name} is not a function (a {type(function).__name__})")
    return Judge(spec, function)


def _import(spec: str, module: str) -> object:
    here = os.getcwd()
    added = here not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and (
            module == e.name or module.startswith(e.name + ".")
        ):  # the module itself (or its package) is missing
            raise GenlabError(
                f"--judge {spec}: no module named {module!r} (a {module.split('.')[0]}.py in the current folder "
                "or an installed module)"
            ) from None
        raise GenlabError(f"--judge {spec}: importing {module} failed: {e}") from None
    except Exception as e:  # noqa: BLE001 - the user's module failed to import: say how, in one line
        raise GenlabError(f"--judge {spec}: importing {module} failed: {type(e).__name__}: {e}") from None
    finally:
        if added:
            sys.path.remove(here)
