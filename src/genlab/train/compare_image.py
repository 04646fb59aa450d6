"""The image families side by side on one data set: the "generative learning trilemma" (Xiao et al. 2022: quality,
coverage, sampling speed) measured instead of argued.

Every named family is trained under the same budget — a number of steps, or wall-clock seconds — once per seed,
from its ``--preset``, then measured by the one evaluator (:func:`genlab.eval.image.evaluate_image_model`) on the
same held-out split and the same number of samples: the likelihood with its kind (exact, bound, none), FID and KID,
precision / recall / density / coverage, class coverage, memorisation, network evaluations and seconds per sample,
parameters, training time. The summary gives each family's mean and standard deviation over seeds. A **floor** row
measures real against real — as many training images as samples, scored against the held-out split by the same
figures — so every figure has its best reachable value beside it (an FID of 0 is not reachable with a finite
sample). ``--from`` measures existing checkpoints the same way instead of training.

By default every family is trained unconditionally (``num_classes=0``): the comparison is of p(x), and the class
shares of the samples are then the mode-collapse test. ``conditional=True`` trains with the labels instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from genlab.checkpoint import CONFIG_FILE, load_model
from genlab.errors import GenlabError
from genlab.eval.image import evaluate_image_model, reference_images
from genlab.eval.image_comparison import FLOOR, Budget, ImageComparison, Row, floor_figures, slug
from genlab.io import read_json
from genlab.models import families_for, family_class
from genlab.models.base import TrainOptions
from genlab.models.image import write_grid
from genlab.runtime import best_device
from genlab.train.run import train

DEFAULT_FAMILIES = ("vae", "gan", "pixelcnn", "diffusion")


def comparable_families() -> list[str]:
    """The families that learn p(x) or p(x | class) from images alone: what ``compare image`` trains."""
    return [f for f in families_for("image") if family_class(f).modality == "image" and not family_class(f).needs]


def preset_size(family: str, preset: str) -> int:
    """The image side ``family``'s ``preset`` trains at; GenlabError for a preset it does not have."""
    cls = family_class(family)
    if preset not in cls.presets:
        raise GenlabError(f"--preset {preset}: {family} has {', '.join(cls.presets)}")
    return int(cls.presets[preset].get("image_size", cls.Config().image_size))


def check_families(text: str) -> list[str]:
    """``"vae,gan"`` → the family names, each checked; GenlabError names the valid ones."""
    names = [f.strip() for f in str(text).split(",") if f.strip()]
    valid = comparable_families()
    unknown = [f for f in names if f not in valid]
    if not names or unknown:
        what = f"unknown family {unknown[0]!r}" if unknown else "no family named"
        raise GenlabError(f"--families: {what}; choose from {', '.join(valid)}")
    if len(set(names)) != len(names):
        raise GenlabError(f"--families {text}: a family is named twice")
    return names


def compare_image(
    data: str,
    families: Sequence[str],
    *,
    budget: Budget | None,
    seeds: int,
    out: Path,
    preset: str = "tiny",
    samples: int = 500,
    classifier: Any = None,
    inception: Any = None,
    size: int | None = None,
    conditional: bool = False,
    runs: Sequence[str] = (),
    device: str | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> ImageComparison:
    """Train each of ``families`` for each seed 0 … ``seeds`` − 1 into ``out/runs/FAMILY-seedS`` (or take the
    checkpoints ``runs`` as they are) and measure each with the one evaluator; the floor row first."""
    device = str(best_device(device))
    if size is None and families:  # one size for every family: the smallest its presets train at
        size = min(preset_size(f, preset) for f in families)
    sizes = {size} if size is not None else set()
    settings = {"budget": str(budget) if budget else None, "seeds": seeds, "preset": preset, "samples": samples,
                "size": size, "conditional": conditional, "device": device}  # fmt: skip
    comparison = ImageComparison(data, settings)
    cache: dict[str, Any] = {}
    jobs: list[tuple[str, str, int | None, Path]] = []  # name, family, seed (None: taken as it is), run folder
    for run in runs:  # checked before any work
        model = load_model(run, task="image", device=device)
        if model.family not in comparable_families():
            raise GenlabError(
                f"--from {run}: a {model.family} model; compare image takes {', '.join(comparable_families())}"
            )
        jobs.append((Path(run).name or str(run), model.family, None, Path(run)))
        sizes.add(model.image_size)
    if len(sizes) > 1:  # figures of different pixel scales do not compare
        raise GenlabError(f"--from: the models work at different sizes ({', '.join(map(str, sorted(sizes)))}); "
                          "compare models of one size (--size sets the size the families train at)")  # fmt: skip
    for family in families:
        for seed in range(seeds):
            jobs.append((family, family, seed, out / "runs" / f"{family}-seed{seed}"))
    (out / "grids").mkdir(parents=True, exist_ok=True)
    floor_done = False
    for i, (name, family, seed, run) in enumerate(jobs):
        label = f"[{i + 1}/{len(jobs)}] {name}" + (f" seed {seed}" if seed is not None else "")
        summary: dict[str, Any] = {}
        if seed is not None:
            say(f"{label}: training ({budget})")
            overrides: dict[str, Any] = (budget.overrides() if budget else {}) | {"seed": seed, "sample_every": 0}
            overrides["eval_every"] = 10**9  # the evaluator below measures it once, at the end
            if not conditional:
                overrides["num_classes"] = 0
            start = time.perf_counter()
            summary = train(family=family, modality="image", data=data, out=run, preset=preset, overrides=overrides,
                            options=TrainOptions(size=size), device=device, quiet=True)  # fmt: skip
            summary["train_seconds"] = time.perf_counter() - start
        model = load_model(run, task="image", device=device)
        reference = reference_images(model, data, "val")
        train_split = reference_images(model, data, "train")
        if not floor_done:
            say(f"{FLOOR}: {samples} training images against the {len(reference)} held out")
            write_grid(out / "grids" / f"{slug(FLOOR)}.png", (reference.images[:64] + 1) / 2, 8, model.image_size)
            floor = floor_figures(train_split, reference, samples, classifier, inception, cache)
            comparison.rows.insert(0, Row(FLOOR, FLOOR, None, None, floor))
            floor_done = True
        say(f"{label}: measuring ({samples} samples)")
        figures = evaluate_image_model(model, reference, fid_samples=samples, judge=classifier, inception=inception,
                                       train=train_split, seed=seed or 0, progress=False, real_cache=cache)  # fmt: skip
        figures["steps"] = summary.get("step", read_json(run / CONFIG_FILE).get("step"))
        figures["train_seconds"] = summary.get("train_seconds", (model.run or {}).get("elapsed_s"))
        if name not in comparison.names():
            model.sample_grid(out / "grids" / f"{slug(name)}.png", 0)
        comparison.rows.append(Row(name, family, seed, str(run), figures))
        say(f"{label}: " + _brief(figures))
    return comparison


def _brief(f: dict[str, Any]) -> str:
    parts = [f"{k} {f[k]:.3g}" for k in ("bits_per_dim", "fid_classifier", "recall_classifier") if k in f]
    return ", ".join(parts) or "measured"
