"""What every ``genlab train`` recipe does first: resolve configs, or recover them from a run to resume."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.checkpoint import CONFIG_FILE, STATE_FILE, check_out, read_config, recover
from genlab.config import apply_overrides, field_names, from_dict
from genlab.errors import GenlabError
from genlab.io import check_writable
from genlab.models import get_family
from genlab.train.config import TrainConfig


@dataclass
class RunPlan:
    cls: type  # the model family
    model_config: Any
    train_config: TrainConfig
    resume: bool
    saved: dict[str, Any] = field(default_factory=dict)  # the "run" record of config.json when resuming
    explicit: set[str] = field(default_factory=set)  # keys the user set (so data-derived values do not override)
    replace: bool = False  # --force over a run or checkpoint already there: cleared when training starts


def resolve_configs(cls: type, preset: str, overrides: dict[str, Any]) -> tuple[Any, TrainConfig]:
    """The model and trainer configs: defaults, then the preset, then explicit overrides."""
    if preset not in cls.presets:
        raise GenlabError(f"unknown preset {preset!r} for {cls.family}; choose one of: {', '.join(cls.presets)}")
    mcfg, tcfg = cls.Config(), TrainConfig()
    apply_overrides([mcfg, tcfg], cls.presets[preset], source=f"preset {preset}")
    apply_overrides([mcfg, tcfg], overrides)
    return mcfg, tcfg


def plan_run(
    out: Path,
    *,
    modality: str | None,
    family: str,
    preset: str,
    overrides: dict[str, Any],
    resume: bool,
    init: Path | None = None,
    size: int | None = None,
    force: bool = False,
) -> RunPlan:
    """Configs for a new run in ``out`` (which must not hold one), or those of the run to resume there.

    On resume the model's shape is fixed; ``overrides`` may change trainer fields (steps, time budget, ...).
    With ``init`` (a checkpoint to fine-tune) the model config is that checkpoint's, then ``overrides``; the
    trainer's is the preset's, then ``overrides``. ``modality``: what ``genlab train`` was asked to train (a kind
    of data or a family name), so a run of another kind is refused. ``size`` (``--size``) sets ``image_size`` for
    families that have one. ``out`` must be absent, empty, or a run of the same family, which ``resume`` continues
    and ``force`` replaces (anything else is refused: genlab never overwrites what it did not write).
    """
    if resume and force:
        raise GenlabError("--resume continues the run in --out, --force replaces it: choose one")
    if resume:
        recover(out, writer=True)  # a save a crash interrupted is completed (or rolled back) first
        if out.exists() and not out.is_dir():
            raise GenlabError(f"--out {out}: is a file; nothing to resume")
        if not (out / CONFIG_FILE).is_file() or not (out / STATE_FILE).is_file():
            raise GenlabError(f"{out}: nothing to resume ({STATE_FILE} is missing); start without --resume")
        saved = read_config(out)
        check_writable(out)
        cls = get_family(saved["family"], modality)
        overrides = _with_size(cls, overrides, size)
        mcfg = from_dict(cls.Config, saved["config"], source=str(out / CONFIG_FILE))
        run = saved.get("run", {})
        if not isinstance(run, dict):
            raise GenlabError(f'{out / CONFIG_FILE}: "run" must be a JSON object')
        tcfg = from_dict(TrainConfig, run.get("train", {}), source=f"{out / CONFIG_FILE} (run.train)")
        model_keys = {k: v for k, v in overrides.items() if k in field_names(mcfg)}
        asked = copy.deepcopy(mcfg)
        apply_overrides([asked], model_keys)
        changed = [k for k in model_keys if getattr(asked, k) != getattr(mcfg, k)]
        if changed:
            raise GenlabError(f"--resume cannot change the model's shape ({', '.join(changed)})")
        apply_overrides([tcfg], {k: v for k, v in overrides.items() if k not in model_keys})
        return RunPlan(cls, mcfg, tcfg, True, run, set(overrides))
    cls = get_family(family, modality)
    replace = check_out(out, cls.family, replace=force, how="continue it with --resume, replace it with --force")
    overrides = _with_size(cls, overrides, size)
    mcfg, tcfg = resolve_configs(cls, preset, overrides)
    if init is not None:
        saved = read_config(init)
        accepted = cls.init_families or (cls.family,)
        if saved.get("family") not in accepted:
            raise GenlabError(
                f"--init {init}: holds a model of family {saved.get('family')!r}; a {cls.family} run starts from "
                + " or ".join(accepted)
            )
        own = {name: getattr(mcfg, name) for name in cls.init_keeps}  # the preset's (and --set's) values
        mcfg = from_dict(cls.Config, saved["config"], source=str(Path(init) / CONFIG_FILE))
        for name, value in own.items():
            setattr(mcfg, name, value)
        apply_overrides([mcfg], {k: v for k, v in overrides.items() if k in field_names(mcfg)})
    return RunPlan(cls, mcfg, tcfg, False, {}, set(overrides), replace)


def _with_size(cls: type, overrides: dict[str, Any], size: int | None) -> dict[str, Any]:
    """``--size`` is the ``image_size`` of families that have one (others check it against their data)."""
    if size is not None and "image_size" in field_names(cls.Config):
        return {"image_size": size} | overrides
    return overrides
