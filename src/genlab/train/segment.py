"""``genlab train segment``: masks (``shapes``, ``blobs`` or a folder) → a promptable segmentation model, with
held-out mIoU (one click, three clicks, a box) at every evaluation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from genlab.data.masks import MaskBatches, mask_sources
from genlab.errors import GenlabError
from genlab.eval.segment import evaluate_prompts
from genlab.runtime import best_device, seed_everything
from genlab.train import distributed
from genlab.train.runs import plan_run
from genlab.train.trainer import Trainer

VAL_SCENES = 200  # held-out generated images (about 700 object and part masks)


def train_segment(
    *,
    data: str | None,
    out: str | Path,
    family: str = "sam",
    preset: str = "tiny",
    overrides: dict[str, Any] | None = None,
    strict: bool = False,
    val_fraction: float = 0.1,
    resume: bool = False,
    device: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train a SAM-style model on ``data`` into ``out``; ``overrides`` may set any model or trainer field
    (``image_size`` is the training size, ``--size``)."""
    out = Path(out)
    plan = plan_run(
        out, modality="segment", family=family, preset=preset, overrides=dict(overrides or {}), resume=resume
    )
    cls, mcfg, tcfg = plan.cls, plan.model_config, plan.train_config
    if resume:
        data = data or plan.saved.get("data")
        val_fraction = plan.saved.get("val_fraction", val_fraction)
    if data is None:
        raise GenlabError("--data is required: shapes, blobs, or a folder with images/ and masks/")
    say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr))
    train_set, val_set = mask_sources(
        data,
        size=mcfg.image_size,
        val_count=VAL_SCENES,
        val_fraction=val_fraction,
        seed=tcfg.seed,
        strict=strict,
        max_objects=mcfg.max_objects,
        part_prob=mcfg.part_prob,
    )
    held = sum(len(s.masks) for s in val_set.samples or [])
    size = "an endless stream" if train_set.endless else f"{len(train_set)} images"
    side = f"{mcfg.image_size}×{mcfg.image_size}"
    say(f"data: {data} at {side}, {size} for training; {len(val_set)} held out ({held} masks)")
    info, dev = distributed.setup(best_device(device))
    seed_everything(tcfg.seed + info.rank)
    model = cls(mcfg)
    say(f"model: {cls.family}, {model.num_params() / 1e6:.2f} M parameters, device {dev}")

    def evaluate(m: Any) -> dict[str, Any]:
        figures = evaluate_prompts(m, val_set.samples, clicks=(1, 3), batch_size=128)
        return {k: v for k, v in figures.items() if k != "masks"}

    batches = MaskBatches(
        train_set,
        batch_size=tcfg.batch_size,
        masks_per_image=mcfg.masks_per_image,
        seed=tcfg.seed,
        rank=info.rank,
        augmentation=mcfg.augment,
    )
    trainer = Trainer(
        model,
        tcfg,
        batches=batches,
        out_dir=out,
        evaluate=evaluate if len(val_set) else None,
        items_per_batch=tcfg.batch_size,
        unit="img",
        run={"data": str(data), "val_fraction": val_fraction},
        device=dev,
        dist=info,
        quiet=quiet,
    )
    result = trainer.fit(resume=resume)
    distributed.teardown(info)
    return result.summary(out, cls.family)
