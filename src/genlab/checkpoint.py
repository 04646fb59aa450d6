"""Checkpoints: a directory with ``config.json``, ``model.safetensors``, the family's extras and ``manifest.json``.

``train_state.pt`` beside them holds everything needed to resume (weights, optimizer, RNG, step) in
one file. A checkpoint is written whole into a hidden sibling (``.NAME.saving``), fsynced, and swapped
in (:func:`genlab.io.swap_in`), so the folder always holds one complete checkpoint: the last, or the one
before. ``manifest.json``, written last, lists every file with its size and SHA-256; readers refuse a
folder that does not match it. Nothing is ever unpickled (``torch.load`` only with ``weights_only=True``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genlab.assets import default_model, shipped_or_path
from genlab.config import from_dict, to_dict
from genlab.data.tokenizers import TOKENIZER_FILE
from genlab.errors import GenlabError
from genlab.io import (
    MANIFEST_FILE,
    RUN_FILES,
    SAVING,
    atomic_path,
    carry_over,
    check_writable,
    fsync_tree,
    read_json,
    read_manifest,
    recover_folder,
    sibling,
    swap_in,
    verify_manifest,
    whole,
    write_json,
    write_manifest_file,
)
from genlab.memory import check_fits
from genlab.models import FAMILIES, get_family
from genlab.models.base import GenerativeModel
from genlab.version import __version__

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "train_state.pt"
#: files that belong to a checkpoint (replaced by the next save); anything else in a run folder is carried over
CHECKPOINT_FILES = frozenset({CONFIG_FILE, WEIGHTS_FILE, EMA_FILE, STATE_FILE, MANIFEST_FILE, TOKENIZER_FILE})
SAVE_DELAY_ENV = "GENLAB_TEST_SAVE_DELAY"  # seconds to pause inside each save (tests that kill a save midway)


def unique_state(
    model: torch.nn.Module, dtype: torch.dtype | None = None, *, params: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """The state dict with tied tensors stored once (the first name wins) and floats cast to ``dtype``.

    ``params`` replaces parameters by name (e.g. with their EMA averages).
    """
    replace = {p.data_ptr(): params[n] for n, p in model.named_parameters() if n in params} if params else {}
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, tuple[int, ...]]] = set()
    for name, t in model.state_dict().items():
        ident = (t.data_ptr(), tuple(t.shape))
        if t.numel() and ident in seen:
            continue
        seen.add(ident)
        t = replace.get(t.data_ptr(), t).to(t.dtype)
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[name] = t.detach().cpu().contiguous()
    return out


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


# --- the manifest -----------------------------------------------------------------------------------------------
def write_manifest(directory: str | Path, step: int | None = None) -> dict[str, Any]:
    """Write ``manifest.json`` (step; each file's name, size and SHA-256) into a checkpoint folder whose files are
    all written, and flush it to disk. ``step`` defaults to config.json's. Also the way to vouch for a folder
    written by hand or by a genlab without manifests."""
    d = Path(directory)
    if step is None and (d / CONFIG_FILE).is_file():
        with contextlib.suppress(ValueError, AttributeError):
            step = read_json(d / CONFIG_FILE).get("step")
    return write_manifest_file(d, {"genlab_version": __version__, "step": step})


# --- writing -----------------------------------------------------------------------------------------------------
def _pause() -> None:
    """The test hook ``GENLAB_TEST_SAVE_DELAY``: stretch a save, so a test can kill the process inside one."""
    delay = os.environ.get(SAVE_DELAY_ENV, "")
    if delay:
        time.sleep(float(delay))


def write_checkpoint(directory: str | Path, write: Callable[[Path], None], *, step: int | None, keep: bool) -> Path:
    """Write a whole checkpoint: ``write(tmp)`` fills the hidden sibling ``.NAME.saving``; then the manifest, the
    files the folder holds besides its checkpoint (metrics.jsonl, samples/, yours) hard-linked in when ``keep``,
    fsync, and the swap. A crash at any point leaves the old checkpoint or the new one (see ``recover``)."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise GenlabError(f"{d}: is a file; a checkpoint is a folder")
    recover(d, writer=True)
    tmp = sibling(d, SAVING)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        _pause()
        write_manifest(tmp, step)
        if keep and d.is_dir():
            old = {f["name"].split("/")[0] for f in _old_manifest_files(d)}
            carry_over(d, tmp, set(CHECKPOINT_FILES) | old)
        fsync_tree(tmp)
        _pause()
        swap_in(tmp, d)
    except BaseException:
        recover(d, writer=True)  # as after a crash: the old checkpoint stays, or the new one if it was whole
        raise
    return d


def _old_manifest_files(d: Path) -> list[dict[str, Any]]:
    try:
        return list(read_json(d / MANIFEST_FILE)["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def recover(directory: str | Path, *, writer: bool) -> None:
    """Complete or roll back a save a crash interrupted (see :func:`genlab.io.recover_folder`)."""
    d = Path(directory)
    if not d.parent.is_dir():
        return
    try:
        recover_folder(d, writer=writer, complete=whole)
    except OSError as e:
        raise GenlabError(f"{d}: cannot finish an interrupted save there ({e.strerror})") from None


REPLACED = ".replaced"  # ``.NAME.replaced``: the run that --force replaces, until the new one has a checkpoint


@contextlib.contextmanager
def replacing(directory: str | Path, active: bool) -> Iterator[None]:
    """``--force``: the body runs in an empty ``directory`` while what it held waits as ``.NAME.replaced``; if the
    body fails before a checkpoint is saved there, the old content is put back, else it goes."""
    if not active:
        yield
        return
    d = Path(directory)
    aside = _set_aside(d)
    try:
        yield
    except BaseException:
        if aside.is_dir() and not (d / MANIFEST_FILE).is_file():
            swap_in(aside, d)
        raise
    if aside.is_dir():
        shutil.rmtree(aside)


def _set_aside(d: Path) -> Path:
    recover(d, writer=True)
    aside = sibling(d, REPLACED)
    if aside.exists() and (d / MANIFEST_FILE).is_file():
        shutil.rmtree(aside)  # a --force run that was stopped after its first checkpoint: that one is current now
    tmp = sibling(d, SAVING)
    tmp.mkdir()
    # an earlier --force run stopped before its first checkpoint: the older run stays aside, this one goes
    swap_in(tmp, d, keep=None if aside.exists() else aside)
    return aside


def save_model(
    model: GenerativeModel,
    directory: str | Path,
    *,
    step: int | None = None,
    run: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
    keep: bool = True,
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``model`` as a checkpoint directory (whole, see :func:`write_checkpoint`). ``run`` (data source,
    trainer config, metrics) is recorded in config.json for people and for ``--resume``; ``extra(folder)`` writes
    more files into it (the trainer's EMA weights and training state). ``keep``: carry over the files the folder
    holds besides its checkpoint; otherwise the folder is replaced as a whole."""
    meta = {"family": model.family} | ({"step": str(step)} if step is not None else {})
    cfg: dict[str, Any] = {
        "genlab_version": __version__,
        "family": model.family,
        "modality": model.modality,
        "config": to_dict(model.config),
    }
    if step is not None:
        cfg["step"] = step
    if run:
        cfg["run"] = run

    def write(d: Path) -> None:
        save_tensors(unique_state(model, dtype), d / WEIGHTS_FILE, meta)
        model.save_extras(d)
        if extra is not None:
            extra(d)
        write_json(d / CONFIG_FILE, cfg)

    return write_checkpoint(directory, write, step=step, keep=keep)


def read_config(directory: str | Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint directory, with clear errors for anything that is not one or does not
    match its manifest (the training state's hash is checked by :func:`load_train_state`)."""
    d = Path(directory)
    recover(d, writer=False)
    if not d.exists():
        raise GenlabError(f"{directory}: no such checkpoint directory")
    if not d.is_dir():
        raise GenlabError(f"{directory}: a checkpoint is a directory (with {CONFIG_FILE} and {WEIGHTS_FILE})")
    if not (d / CONFIG_FILE).is_file():
        raise GenlabError(f"{directory}: not a genlab checkpoint ({CONFIG_FILE} is missing)")
    verify_manifest(d, skip_hash=frozenset({STATE_FILE}))
    try:
        cfg = read_json(d / CONFIG_FILE)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GenlabError(f"{d / CONFIG_FILE}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or cfg.get("family") not in FAMILIES or not isinstance(cfg.get("config"), dict):
        fam = cfg.get("family") if isinstance(cfg, dict) else None
        raise GenlabError(f"{d / CONFIG_FILE}: unknown model family {fam!r}; this genlab knows {', '.join(FAMILIES)}")
    return cfg


def build_model(cfg: dict[str, Any], *, source: str | Path = CONFIG_FILE) -> GenerativeModel:
    """An untrained model of the family and config recorded in ``cfg`` (a config.json dict, read from ``source``).

    Every value is checked against its field's type and range, and the weights' size against the free memory,
    before anything is allocated."""
    cls = get_family(cfg["family"])
    config = from_dict(cls.Config, cfg["config"], source=str(source))
    nbytes = cls.parameter_bytes(config)
    if nbytes is not None:
        check_fits(nbytes, f"{source}: this {cfg['family']} model's weights")
    return cls(config)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise GenlabError(f"{path.parent}: checkpoint is missing {path.name}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise GenlabError(f"{path}: not a readable safetensors file ({e})") from None


def load_model(
    path: str | Path | None = None,
    *,
    task: str | None = None,
    device: str | torch.device | None = None,
    ema: bool = True,
) -> GenerativeModel:
    """A ready model (eval mode) from a checkpoint directory; the default model for ``task`` if no path.

    ``task`` (``"text"``, ``"image"``, ...) checks that the checkpoint is of that modality. With
    ``ema`` the averaged weights (``ema.safetensors``) are used where the run kept them.
    """
    if path is None:  # a shipped default is right for its task by construction
        d, task = default_model(task or "text"), None
    else:
        d = shipped_or_path(path)  # a path, or a shipped model's name (gpt-kjv)
    for attempt in range(3):  # a save that swapped the folder in while it was read: read it again
        ident = _identity(d)
        try:
            model = _load(d, task, ema)
        except GenlabError:
            if attempt < 2 and _identity(d) != ident:
                continue
            raise
        if _identity(d) == ident:
            break
    if device is not None:
        model.to(device)
    return model.eval()


def _identity(d: Path) -> tuple[int, int] | None:
    try:
        st = d.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _load(d: Path, task: str | None, ema: bool) -> GenerativeModel:
    cfg = read_config(d)
    cls = get_family(cfg["family"])
    if task is not None and cls.modality != task:
        raise GenlabError(f"{d} holds a {cfg['family']} model ({cls.modality}); this needs a {task} model")
    model = build_model(cfg, source=d / CONFIG_FILE)
    listed = {f["name"] for f in read_manifest(d)["files"]}  # a stray file the manifest does not vouch for is ignored
    weights = d / EMA_FILE if ema and EMA_FILE in listed else d / WEIGHTS_FILE
    model.load_weights(read_weights(weights))
    model.load_extras(d)
    model.run = cfg.get("run", {})  # how it was trained: data source, its domain, class names, trainer config
    model.path = d
    return model


def save_train_state(directory: str | Path, state: dict[str, Any]) -> None:
    """Write ``train_state.pt`` into a checkpoint being written (``save_model``'s ``extra``)."""
    with atomic_path(Path(directory) / STATE_FILE) as tmp:
        torch.save(state, tmp)


def load_train_state(directory: str | Path) -> dict[str, Any]:
    """The training state of a run folder, after checking the whole checkpoint against its manifest."""
    path = Path(directory) / STATE_FILE
    recover(directory, writer=False)
    if not path.is_file():
        raise GenlabError(f"{directory}: nothing to resume ({STATE_FILE} is missing); start without --resume")
    verify_manifest(directory)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is bad input here
        raise GenlabError(f"{path}: unreadable training state ({type(e).__name__}); start a new run") from None


def export_checkpoint(
    src: str | Path,
    dst: str | Path,
    *,
    dtype: str = "float32",
    decoder: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Copy the inference part of a checkpoint (config, weights — the EMA ones where kept — and
    extras) to ``dst``, casting floating-point weights to ``dtype``. Training state is left behind.

    ``decoder``: for a text-to-image model, an autoencoder checkpoint whose decoder replaces the pipeline's — one
    fine-tuned from the pipeline's own autoencoder with its encoder frozen (``train_encoder=false``), so the latents
    the UNet learned are unchanged; its encoder must equal the pipeline's (in the precision the pipeline was saved
    in), or it is an error naming the mismatch. ``dst`` must be new, empty, or (with ``force``, replaced as a whole)
    a checkpoint of the same family."""
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in dtypes:
        raise GenlabError(f"--dtype {dtype}: choose one of {', '.join(dtypes)}")
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise GenlabError("--out must differ from the source checkpoint")
    cfg = read_config(src)
    check_out(dst, cfg["family"], replace=force, how="replace it with --force")
    model = load_model(src)
    run = dict(cfg.get("run", {})) | {"exported_from": str(src), "export_dtype": dtype}
    if decoder is not None:
        part = load_model(decoder, task="autoencoder")
        model.replace_part("decoder", part, dtypes[cfg.get("run", {}).get("export_dtype", "float32")])
        run["decoder_from"] = str(decoder)
    model.prepare_export(dtypes[dtype])
    return save_model(model, dst, step=cfg.get("step"), run=run, dtype=dtypes[dtype], keep=False)


# --- where a checkpoint may go -------------------------------------------------------------------------------------
def check_out(path: str | Path, family: str, *, replace: bool, how: str, option: str = "--out") -> bool:
    """Refuse to write a ``family`` checkpoint into ``path`` unless it is absent, empty, or a run or checkpoint of
    the same family and ``replace`` (``--force``/``--resume``; ``how`` names them); then check the place is
    writable. True when ``path`` holds something to replace."""
    p = Path(path)
    recover(p, writer=False)
    where = f"{option} {path}"
    if p.exists() and not p.is_dir():
        raise GenlabError(f"{where}: is a file; {option} names a folder to write the checkpoint in")
    found = folder_family(p) if p.is_dir() else None
    if found is None and p.is_dir() and any(p.iterdir()):
        raise GenlabError(f"{where}: holds files that are not a genlab checkpoint; choose a new or empty folder")
    if found not in (None, "", family):
        raise GenlabError(f"{where}: holds a {found} checkpoint, not {family}; choose another {option}")
    if found is not None and not replace:
        what = f"a {family} checkpoint" if found else "a run that saved no checkpoint"
        raise GenlabError(f"{path} already holds {what}; {how}, or choose another {option}")
    check_writable(p, option)
    return found is not None


def folder_family(d: Path) -> str | None:
    """The family of the checkpoint in folder ``d``; ``""`` for a run folder with no checkpoint yet (only the
    run's own files); None for anything else."""
    if (d / CONFIG_FILE).is_file():
        try:
            family = read_json(d / CONFIG_FILE).get("family")
        except (ValueError, AttributeError, OSError):
            return None
        return family if isinstance(family, str) else None
    names = {e.name for e in d.iterdir()}
    return "" if names and names <= RUN_FILES else None
