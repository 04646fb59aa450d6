"""Checkpoints: a directory with ``config.json``, ``model.safetensors`` and the family's extras.

``train_state.pt`` beside them holds everything needed to resume (weights, optimizer, RNG, step) in
one file, so a resumed run never mixes two steps. Every file is written to a temporary name and
renamed; nothing is ever unpickled (``torch.load`` only with ``weights_only=True``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genlab.assets import default_model
from genlab.config import from_dict, to_dict
from genlab.errors import GenlabError
from genlab.io import atomic_path, read_json, write_json
from genlab.memory import check_fits
from genlab.models import FAMILIES, get_family
from genlab.models.base import GenerativeModel
from genlab.version import __version__

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "train_state.pt"


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


def save_model(
    model: GenerativeModel,
    directory: str | Path,
    *,
    step: int | None = None,
    run: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model`` as a checkpoint directory. ``run`` (data source, trainer config, metrics) is
    recorded in config.json for people and for ``--resume``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = {"family": model.family} | ({"step": str(step)} if step is not None else {})
    save_tensors(unique_state(model, dtype), d / WEIGHTS_FILE, meta)
    model.save_extras(d)
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
    write_json(d / CONFIG_FILE, cfg)
    return d


def read_config(directory: str | Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint directory, with clear errors for anything that is not one."""
    d = Path(directory)
    if not d.exists():
        raise GenlabError(f"{directory}: no such checkpoint directory")
    if not d.is_dir():
        raise GenlabError(f"{directory}: a checkpoint is a directory (with {CONFIG_FILE} and {WEIGHTS_FILE})")
    if not (d / CONFIG_FILE).is_file():
        raise GenlabError(f"{directory}: not a genlab checkpoint ({CONFIG_FILE} is missing)")
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
        d = Path(path)
    cfg = read_config(d)
    cls = get_family(cfg["family"])
    if task is not None and cls.modality != task:
        raise GenlabError(f"{d} holds a {cfg['family']} model ({cls.modality}); this needs a {task} model")
    model = build_model(cfg, source=d / CONFIG_FILE)
    weights = d / EMA_FILE if ema and (d / EMA_FILE).is_file() else d / WEIGHTS_FILE
    model.load_weights(read_weights(weights))
    model.load_extras(d)
    model.run = cfg.get("run", {})  # how it was trained: data source, class names, trainer config
    if device is not None:
        model.to(device)
    return model.eval()


def save_train_state(directory: str | Path, state: dict[str, Any]) -> None:
    with atomic_path(Path(directory) / STATE_FILE) as tmp:
        torch.save(state, tmp)


def load_train_state(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise GenlabError(f"{directory}: nothing to resume ({STATE_FILE} is missing); start without --resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is bad input here
        raise GenlabError(f"{path}: unreadable training state ({type(e).__name__}); start a new run") from None


def export_checkpoint(
    src: str | Path, dst: str | Path, *, dtype: str = "float32", decoder: str | Path | None = None
) -> Path:
    """Copy the inference part of a checkpoint (config, weights — the EMA ones where kept — and
    extras) to ``dst``, casting floating-point weights to ``dtype``. Training state is left behind.

    ``decoder``: for a text-to-image model, an autoencoder checkpoint whose decoder replaces the pipeline's — one
    fine-tuned from the pipeline's own autoencoder with its encoder frozen (``train_encoder=false``), so the latents
    the UNet learned are unchanged; its encoder must equal the pipeline's (in the precision the pipeline was saved
    in), or it is an error naming the mismatch."""
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in dtypes:
        raise GenlabError(f"--dtype {dtype}: choose one of {', '.join(dtypes)}")
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise GenlabError("--out must differ from the source checkpoint")
    cfg = read_config(src)
    model = load_model(src)
    run = dict(cfg.get("run", {})) | {"exported_from": str(src), "export_dtype": dtype}
    if decoder is not None:
        part = load_model(decoder, task="autoencoder")
        model.replace_part("decoder", part, dtypes[cfg.get("run", {}).get("export_dtype", "float32")])
        run["decoder_from"] = str(decoder)
    model.prepare_export(dtypes[dtype])
    return save_model(model, dst, step=cfg.get("step"), run=run, dtype=dtypes[dtype])
