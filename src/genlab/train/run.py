"""``genlab train``: one recipe for every family — data → model → the Trainer → a checkpoint with held-out figures.

What differs between families lives in the family's own file, behind the hooks of
:class:`genlab.models.base.GenerativeModel`: ``prepare_data`` loads and splits ``--data``, ``build`` (or
``rebuild`` on ``--resume``) makes the model from the data and its trained ``parts``, ``batches`` serves stateless
micro-batches, ``evaluate`` and ``preview`` run along the way, ``final_figures`` closes the run. Families fit in
closed form (``trains_by_counting``) are fitted and saved without the Trainer.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from genlab.assets import default_model, shipped_or_path
from genlab.checkpoint import CONFIG_FILE, load_model, replacing, save_model
from genlab.data.domain import data_domain
from genlab.errors import GenlabError
from genlab.io import append_jsonl
from genlab.memory import check_fits, format_bytes
from genlab.models import FAMILIES, family_class, get_family
from genlab.models.base import GenerativeModel, TrainOptions
from genlab.runtime import best_device, seed_everything
from genlab.train import distributed
from genlab.train.config import TrainConfig
from genlab.train.runs import plan_run
from genlab.train.trainer import METRICS_FILE, Trainer


def train(
    *,
    family: str,
    data: str | None,
    out: str | Path,
    modality: str | None = None,
    preset: str = "tiny",
    overrides: dict[str, Any] | None = None,
    options: TrainOptions | None = None,
    parts: dict[str, str | None] | None = None,
    resume: bool = False,
    force: bool = False,
    init: str | Path | None = None,
    device: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train a model of ``family`` on ``data`` into the run directory ``out`` and return its summary.

    ``overrides`` may set any model or trainer field (``steps``, ``seed``, ``time_budget`` included); ``options``
    carry the data options (``--size``, ``--tokenizer``, ...); ``parts`` name the trained checkpoints the family
    needs (``--autoencoder DIR``, ...). ``init``: a checkpoint of the same family whose weights (and model config)
    the run starts from — fine-tuning; ``overrides`` may change fields that keep the weights' shapes. ``force``:
    replace the run or checkpoint of the same family in ``out``. A run that fails before its first checkpoint
    removes the folder it created (never one that was there before).
    """
    out = Path(out)
    created = _first_missing(out)
    try:
        return _train(
            family, data, out, modality, preset, overrides, options, parts, resume, force, init, device, quiet
        )
    except BaseException:
        if created is not None and created.is_dir() and not (out / CONFIG_FILE).exists() and _is_main():
            shutil.rmtree(created, ignore_errors=True)
        raise


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what a failed run removes), or None."""
    missing = None
    for p in [path, *path.parents]:
        if p.exists() or p.is_symlink():
            break
        missing = p
    return missing


def _is_main() -> bool:
    return distributed.launched_rank() == 0


def _train(
    family: str,
    data: str | None,
    out: Path,
    modality: str | None,
    preset: str,
    overrides: dict[str, Any] | None,
    options: TrainOptions | None,
    parts: dict[str, str | None] | None,
    resume: bool,
    force: bool,
    init: str | Path | None,
    device: str | None,
    quiet: bool,
) -> dict[str, Any]:
    given_init = str(init) if init is not None else None  # recorded as given: a shipped name stays a name
    init = shipped_or_path(init) if init is not None else None
    overrides = dict(overrides or {})
    options = options or TrainOptions()
    if init is not None and (resume or not get_family(family, modality).fine_tunes):
        able = ", ".join(f for f in FAMILIES if family_class(f).fine_tunes)
        raise GenlabError(
            f"--init starts a new run from another checkpoint's weights: not with --resume, and only for {able}"
        )
    plan = plan_run(
        out, modality=modality, family=family, preset=preset, overrides=overrides, resume=resume,
        init=init, size=options.size, force=force,
    )  # fmt: skip
    cls, mcfg, tcfg = plan.cls, plan.model_config, plan.train_config
    if resume:
        data = data or plan.saved.get("data")
        saved_fraction = plan.saved.get("val_fraction")
        if saved_fraction is not None:
            options.val_fraction = saved_fraction
    if data is None:
        raise GenlabError(f"--data is required: {cls.data_help or 'see genlab train --help'}")
    # under torchrun only rank 0 speaks: the others would repeat every line
    say = (lambda msg: None) if quiet or not _is_main() else (lambda msg: print(msg, file=sys.stderr))
    options.seed, options.explicit = tcfg.seed, frozenset(plan.explicit)
    options.resume_from = out if resume else None
    options.init_from = init
    started_from = init if init is not None else plan.saved.get("init")  # a resumed fine-tuning run's too
    if started_from is not None and shipped_or_path(started_from).is_dir():
        options.init_model = load_model(started_from)
    part_paths = resolve_parts(cls, mcfg, parts or {}, plan.saved, resume)
    loaded = {name: load_model(path, task=cls.parts[name].task) for name, path in part_paths.items()}
    dataset = cls.prepare_data(data, mcfg, options, loaded)
    fraction = cls.val_fraction if options.val_fraction is None else options.val_fraction
    run_info = {"data": str(data), "val_fraction": fraction} | dataset.run
    start = options.init_model if cls.domain_from == "init" else loaded.get(cls.domain_from)
    run_info["domain"] = data_domain(str(data), size=dataset.size, tuned_from=start)  # what it will know (design.md)
    run_info |= {name: str(path) for name, path in part_paths.items()}
    say(f"data: {dataset.describe}")
    if cls.trains_by_counting:
        _check_memory(cls, mcfg, tcfg, torch.device("cpu"))
        model = cls.build(mcfg, dataset, loaded)
        model.fit_data(dataset)  # fitting may record more in the run (the n-gram: its counts)
        save_model(model, out, run=run_info | dataset.run, keep=not plan.replace)
        return _summary(model, out, dataset, "done", 0, float("nan"), {})

    info, dev = distributed.setup(best_device(device))
    seed_everything(tcfg.seed + info.rank)
    _check_memory(cls, mcfg, tcfg, dev)
    with replacing(out, plan.replace and info.is_main):  # --force: the old run stays aside until the new one saves
        model = cls.rebuild(mcfg, out, loaded) if resume else cls.build(mcfg, dataset, loaded)
        model.attach_parts(loaded)
        if init is not None:
            _load_init(model, init, options.init_model)
            run_info["init"] = given_init
        elif plan.saved.get("init"):
            run_info["init"] = plan.saved["init"]
        say(f"model: {cls.family}, {model.num_params() / 1e6:.2f} M parameters, device {dev}")
        held_out = len(dataset.val) > 0
        trainer = Trainer(
            model,
            tcfg,
            batches=model.batches(dataset, batch_size=tcfg.batch_size, seed=tcfg.seed, rank=info.rank),
            out_dir=out,
            evaluate=(lambda m: m.evaluate(dataset.val, batches=tcfg.eval_batches, batch_size=tcfg.batch_size))
            if held_out
            else None,
            on_sample=(lambda m, step: m.preview(out / "samples" / f"step_{step:06d}.png", dataset.val, tcfg.seed))
            if held_out and type(model).preview is not GenerativeModel.preview
            else None,
            items_per_batch=model.items_per_batch(tcfg.batch_size),
            unit=cls.unit,
            run=run_info,
            device=dev,
            dist=info,
            quiet=quiet,
        )
        result = trainer.fit(resume=resume)
    distributed.teardown(info)
    if not info.is_main or result.stopped == "interrupted":
        return {"out": str(out), "family": cls.family, "stopped": result.stopped, "step": result.step}
    return _summary(model, out, dataset, result.stopped, result.step, result.loss, result.evals)


def resolve_parts(
    cls: type, config: Any, given: dict[str, str | None], saved: dict[str, Any], resume: bool
) -> dict[str, str | Path]:
    """The checkpoint directory of every part ``cls`` needs for this run: the one given, the one a resumed run
    recorded, or the shipped default; a required part that is missing is an error naming its option."""
    unknown = sorted(k for k, v in given.items() if v and k not in cls.parts)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise GenlabError(f"{flags}: a {cls.family} model takes no such part")
    paths: dict[str, str | Path] = {}
    missing = []
    for name, part in cls.parts.items():
        if part.needed is not None and not part.needed(config):
            if given.get(name):  # e.g. --reward with rlhf's dpo: silently ignoring it would mislead
                raise GenlabError(f"--{name.replace('_', '-')}: this {cls.family} run does not use it with these "
                                  "settings (see --help)")  # fmt: skip
            continue
        if resume and not part.on_resume:
            continue
        path = given.get(name) or saved.get(name) or (default_model(part.default) if part.default else None)
        if path is None:
            missing.append(name)
        else:
            paths[name] = path
    if missing:
        flags = " and ".join(f"--{n.replace('_', '-')} DIR" for n in missing)
        raise GenlabError(f"{cls.family} needs {flags} (train them first)")
    return paths


def _check_memory(cls: type[GenerativeModel], mcfg: Any, tcfg: TrainConfig, dev: torch.device) -> None:
    """Refuse, before allocating, a model whose training state cannot fit: the weights, and for gradient training
    their gradients, AdamW's two moments and the EMA copy (activations come on top)."""
    nbytes = cls.parameter_bytes(mcfg)
    if nbytes is None:
        return
    copies = 1 if cls.trains_by_counting else 4 + (tcfg.ema > 0)
    what = f"training this {cls.family} model ({format_bytes(nbytes)} of weights"
    what += ")" if copies == 1 else ", with gradients and optimizer state)"
    check_fits(nbytes * copies, what)  # it is built in host memory first
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        check_fits(nbytes * copies, what, available=free, where=f"the GPU ({dev})")


def _summary(
    model: GenerativeModel, out: Path, dataset: Any, stopped: str, step: int, loss: float, evals: dict[str, Any]
) -> dict[str, Any]:
    """What ``genlab train --json`` prints; a family's own closing figures are also appended to metrics.jsonl."""
    held_out = model.final_figures(dataset, evals)
    if held_out is not evals and held_out:
        append_jsonl(out / METRICS_FILE, {"step": step, "held_out": held_out})
    summary = {"out": str(out), "family": model.family, "stopped": stopped, "step": step}
    if not model.trains_by_counting:
        summary["loss"] = loss
    return summary | {"held_out": held_out}


def _load_init(model: GenerativeModel, init: Path, source: GenerativeModel) -> None:
    """Start ``model`` from ``source``, checkpoint ``init`` loaded (its EMA weights where it kept them): the
    family's ``init_from``."""
    try:
        model.init_from(source)
    except GenlabError as e:
        raise GenlabError(f"--init {init}: {str(e).removeprefix('--init: ')}") from None
