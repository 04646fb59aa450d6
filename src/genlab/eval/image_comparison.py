"""What an image comparison holds and how its budget is given: the rows (one per measured model, the floor first),
their summary (mean and standard deviation over seeds of each figure of :data:`FIGURES`), and the floor itself.
:func:`genlab.train.compare_image.compare_image` fills one; :mod:`genlab.eval.image_report` writes it out.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from genlab.errors import GenlabError
from genlab.eval.image import at_size, class_coverage, image_metrics

FLOOR = "real data"
#: the figures the summary aggregates, in the report's order: key, heading, True where higher is better
FIGURES: tuple[tuple[str, str, bool | None], ...] = (
    ("bits_per_dim", "bits/dim", False),
    ("fid_classifier", "FID (classifier)", False),
    ("kid_classifier", "KID (classifier)", False),
    ("precision_classifier", "precision", True),
    ("recall_classifier", "recall", True),
    ("density_classifier", "density", True),
    ("coverage_classifier", "coverage", True),
    ("min_class_share", "min class share", True),
    ("class_accuracy", "class accuracy", True),
    ("fid_inception", "FID (Inception)", False),
    ("closer_than_held_out_5pct", "near-copies", False),
    ("seconds_per_sample", "s / sample", False),
    ("network_evals_per_sample", "evals / sample", False),
    ("parameters", "parameters", None),
    ("train_seconds", "train s", None),
    ("steps", "steps", None),
)
BUDGET_HELP = "steps (2000), wall-clock time (90s, 10m, 1h) or preset (each family's own steps)"
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Budget:
    """What every family trains for: ``steps``, or ``seconds`` of wall-clock time, or neither: each family's own
    preset (its tuned number of steps)."""

    steps: int | None = None
    seconds: float | None = None

    def overrides(self) -> dict[str, Any]:
        if self.seconds is not None:  # the clock alone decides when to stop
            return {"time_budget": self.seconds, "steps": 10**9}
        return {"steps": self.steps} if self.steps is not None else {}

    def __str__(self) -> str:
        if self.seconds is not None:
            return f"{self.seconds:g} s"
        return f"{self.steps} steps" if self.steps is not None else "each preset's steps"


def parse_budget(text: str) -> Budget:
    """``"2000"`` → 2000 steps; ``"90s"``, ``"10m"``, ``"1.5h"`` → seconds; ``"preset"`` → each family's preset.
    0, negatives and anything else: a clear GenlabError."""
    if str(text).strip().lower() == "preset":
        return Budget()
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(s|m|h|steps?)?\s*", str(text).lower())
    if not m:
        raise GenlabError(f"--budget {text!r}: give {BUDGET_HELP}")
    value, unit = float(m.group(1)), m.group(2) or "steps"
    if not value > 0 or not math.isfinite(value):
        raise GenlabError(f"--budget {text!r}: must be more than 0 ({BUDGET_HELP})")
    if unit.startswith("step"):
        if value != int(value):
            raise GenlabError(f"--budget {text!r}: a number of steps is a whole number")
        return Budget(steps=int(value))
    return Budget(seconds=value * _UNITS[unit])


def slug(name: str) -> str:
    """A file name for a row's sample grid (``grids/NAME.png``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


@dataclass
class Row:
    """One measured model: a family trained with one seed, a checkpoint given with ``--from``, or the floor."""

    name: str  # what the summary groups by: the family, the run's folder name, or FLOOR
    family: str
    seed: int | None
    run: str | None
    figures: dict[str, Any]


@dataclass
class ImageComparison:
    data: str
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)

    def names(self) -> list[str]:
        return list(dict.fromkeys(r.name for r in self.rows))

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per name: ``runs``, the likelihood's kind, and for each figure of :data:`FIGURES` its mean and standard
        deviation over the rows that have it (sd 0 for one row)."""
        out: dict[str, dict[str, Any]] = {}
        for name in self.names():
            rows = [r for r in self.rows if r.name == name]
            entry: dict[str, Any] = {"family": rows[0].family, "runs": len(rows)}
            entry["likelihood"] = rows[0].figures.get("likelihood", "none")
            for key, _, _ in FIGURES:
                values = [float(r.figures[key]) for r in rows if isinstance(r.figures.get(key), (int, float))]
                if values:
                    sd = statistics.stdev(values) if len(values) > 1 else 0.0
                    entry[key] = {"mean": statistics.fmean(values), "sd": sd}
            out[name] = entry
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "settings": self.settings,
            "summary": self.summary(),
            "rows": [vars(r) for r in self.rows],
        }


def floor_figures(train: Any, val: Any, samples: int, classifier: Any, inception: Any, cache: dict) -> dict:
    """Real against real: the first ``samples`` training images scored against the held-out split, as samples are."""
    real = (train.images[:samples] + 1) / 2
    figures = image_metrics(real, (val.images + 1) / 2, classifier=classifier, inception=inception, real_cache=cache)
    if classifier is not None:
        preds = classifier.predict(at_size(real, classifier.config.image_size))[0]
        figures |= class_coverage(preds, classifier.config.num_classes)
    return figures | {"likelihood": "none", "samples": len(real)}
