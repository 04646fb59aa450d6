"""Preference pairs: what a reward model and DPO learn from, one JSON object per line of a .jsonl file::

    {"prompt": "How are you?", "chosen": "Very well, thanks.", "rejected": "Not so great.",
     "system": "Answer briefly.", "scores": [0.61, -0.33]}

``system`` and ``scores`` (the judge's, when a program labelled the pair) are optional. ``genlab label pairs``
writes this format, and a user can write it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genlab.data.chat import SPECIALS
from genlab.data.text import read_jsonl
from genlab.errors import GenlabError
from genlab.io import user_path


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str
    system: str | None = None

    def to_json(self, scores: tuple[float, float] | None = None) -> dict:
        out: dict = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        if self.system:
            out["system"] = self.system
        if scores is not None:
            out["scores"] = [round(float(s), 6) for s in scores]
        return out


def parse_pair(obj: object, where: str) -> Pair:
    """One pair from a parsed JSON line; anything malformed is a GenlabError that starts with ``where``."""
    if not isinstance(obj, dict):
        raise GenlabError(f'{where}: expected an object with "prompt", "chosen" and "rejected"')
    for key in ("prompt", "chosen", "rejected"):
        if not isinstance(obj.get(key), str):
            raise GenlabError(f'{where}: "{key}" must be a string')
        if any(s in obj[key] for s in SPECIALS):
            raise GenlabError(f'{where}: "{key}" contains a template token ({", ".join(SPECIALS)})')
    system = obj.get("system")
    if system is not None and not isinstance(system, str):
        raise GenlabError(f'{where}: "system" must be a string')
    if obj["chosen"] == obj["rejected"]:
        raise GenlabError(f"{where}: chosen equals rejected (a pair must prefer one answer to another)")
    if not obj["chosen"].strip() or not obj["rejected"].strip():
        raise GenlabError(f"{where}: an empty answer (chosen and rejected must both say something)")
    return Pair(obj["prompt"], obj["chosen"], obj["rejected"], system or None)


def read_pairs(source: str | Path) -> list[Pair]:
    """Every pair of a .jsonl file; errors name the line."""
    path = user_path(source)
    if not path.is_file():
        raise GenlabError(f"--data {source}: no such file (a .jsonl of preference pairs: genlab label pairs)")
    out = [parse_pair(obj, f"{path} line {n}") for n, obj in read_jsonl(path)]
    if not out:
        raise GenlabError(f"{path}: no preference pairs in it")
    return out


def by_prompt(pairs: list[Pair]) -> list[list[Pair]]:
    """Pairs grouped by (system, prompt), in first-seen order: InstructGPT puts all of a prompt's comparisons in
    one batch element, so the reward model does not overfit to a prompt seen in many separate steps."""
    groups: dict[tuple[str | None, str], list[Pair]] = {}
    for p in pairs:
        groups.setdefault((p.system, p.prompt), []).append(p)
    return list(groups.values())
