"""The studio's longer jobs: inpainting a painted hole (Edit tab) and training runs (Train tab).

Inpainting calls the same functions as ``genlab edit inpaint``: PatchMatch hole filling, the classic OpenCV and
scikit-image fills, or the text-to-image model. Every method returns the pixels outside the hole exactly as given.

A training run is the ``genlab train`` command itself, started as a child process into a folder under ``--runs``:
its ``metrics.jsonl`` is read as it grows and each logged step becomes a ``loss`` event; cancelling the job sends it
Ctrl-C (SIGINT), on which the trainer saves its checkpoint and stops, so the run can be resumed later.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from genlab.errors import GenlabError
from genlab.serve.jobs import Cancelled, Job
from genlab.serve.store import Store, valid_id

INPAINT_METHODS = ("patchmatch", "telea", "ns", "biharmonic", "diffusion")
#: what the Train tab offers: family → the data it trains on here, and the ``genlab train`` kind
TRAINABLE = {"gan": ("digits", "image"), "vae": ("digits", "image"), "pixelcnn": ("digits", "image"),
             "diffusion": ("digits", "image"), "lstm": ("kjv", "text"), "gpt": ("kjv", "text")}  # fmt: skip
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def decode_rle(runs: Any, width: int, height: int) -> np.ndarray:
    """A boolean ``height×width`` mask from row-major run lengths that start with a run of False."""
    try:
        counts = [int(r) for r in runs]
    except (TypeError, ValueError):
        raise GenlabError("mask: run lengths must be whole numbers") from None
    if any(c < 0 for c in counts) or sum(counts) != width * height:
        raise GenlabError(f"mask: the run lengths must add up to {width}×{height} = {width * height} pixels")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape(height, width)


def inpaint_params(raw: dict, uploads: dict[str, np.ndarray]) -> dict[str, Any]:
    image = str(raw.get("image", ""))
    if not valid_id(image) or image not in uploads:
        raise GenlabError("image: upload the image first (it is kept for the last 16 uploads)")
    method = str(raw.get("method", "patchmatch"))
    if method not in INPAINT_METHODS:
        raise GenlabError(f"method: {method!r}; choose one of {', '.join(INPAINT_METHODS)}")
    h, w = uploads[image].shape[:2]
    hole = decode_rle(raw.get("mask") or [], w, h)
    if not hole.any():
        raise GenlabError("paint the area to fill first")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or seed < 0:
        raise GenlabError(f"seed: {seed!r} is not a whole number ≥ 0")
    return {
        "image": image,
        "method": method,
        "prompt": str(raw.get("prompt", ""))[:500],
        "seed": seed,
        "hole_pixels": int(hole.sum()),
        "_hole": hole,
    }  # fmt: skip  (the caller takes "_hole" out)


def run_inpaint(models: Any, store: Store, image: np.ndarray, hole: np.ndarray, job: Job, emit: Any) -> dict[str, Any]:
    """Fill ``hole`` of ``image`` (both taken when the job was queued) with the job's method."""
    p = job.params
    image = image[..., :3]
    start = time.perf_counter()
    if p["method"] == "patchmatch":
        from genlab.edit.patchmatch import check_patch
        from genlab.edit.synthesis import SynthesisConfig, count_levels, hole_levels, inpaint

        cfg = SynthesisConfig(seed=p["seed"])
        check_patch(image.shape, cfg.patch)
        levels = min(count_levels(image.shape, cfg), hole_levels(hole, cfg.patch))

        def progress(done: int) -> None:
            job.check()
            emit("progress", done=done, total=levels, unit="level")

        out = inpaint(image, hole, cfg, progress=progress)
    elif p["method"] == "diffusion":
        from genlab.edit.diffusion import inpaint
        from genlab.runtime import make_generator

        out = inpaint(models.get("text2image"), image, hole, p["prompt"], generator=make_generator(p["seed"]),
                      callback=lambda state: job.check())  # fmt: skip
    else:
        from genlab.edit.baselines import inpaint_baseline

        out = inpaint_baseline(image, hole, p["method"])
    item = store.add("edit", {k: v for k, v in p.items() if k != "image"}, image=np.clip(out, 0, 1))
    return {"item": item, "seconds": round(time.perf_counter() - start, 3)}


# --- training ----------------------------------------------------------------------------------------------
def train_params(raw: dict, runs: Path) -> dict[str, Any]:
    family = str(raw.get("family", "gan"))
    if family not in TRAINABLE:
        raise GenlabError(f"family: {family!r}; the Train tab trains {', '.join(TRAINABLE)}")
    name = str(raw.get("name") or family)
    if not RUN_NAME.fullmatch(name):
        raise GenlabError(f"name: {name!r}; letters, digits, '.', '_' and '-' (a folder name under --runs)")
    steps = raw.get("steps", 500)
    if not isinstance(steps, int) or not 1 <= steps <= 10**7:
        raise GenlabError(f"steps: {steps!r}; a whole number from 1 to 10,000,000")
    settings = [str(s) for s in raw.get("set") or []]
    if any(not re.fullmatch(r"[a-z_][a-z0-9_]*=[^\s]{1,64}", s) for s in settings):
        raise GenlabError("set: each is key=value (a model or trainer field), as --set takes")
    resume = bool(raw.get("resume"))
    if resume and not (runs / name / "config.json").is_file():
        raise GenlabError(f"resume: {name} has no checkpoint under --runs")
    if not resume and (runs / name).exists():
        raise GenlabError(f"name: {name} exists under --runs; resume it or choose another name")
    return {"family": family, "name": name, "steps": steps, "preset": "tiny", "set": settings, "resume": resume}


def run_training(runs: Path, job: Job, emit: Any) -> dict[str, Any]:
    p = job.params
    data, kind = TRAINABLE[p["family"]]
    out = runs / p["name"]
    argv = [sys.executable, "-m", "genlab", "train", kind, "--data", data, "--model", p["family"], "--preset",
            p["preset"], "--steps", str(p["steps"]), "--out", str(out), "--quiet"]  # fmt: skip
    for setting in p["set"]:
        argv += ["--set", setting]
    if p["resume"]:
        argv.append("--resume")
    runs.mkdir(parents=True, exist_ok=True)
    log = runs / f".{p['name']}.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    metrics, offset, last = out / "metrics.jsonl", 0, {}
    # a resumed run's log holds the earlier steps: only the steps after its checkpoint are new
    after = json.loads((out / "config.json").read_text()).get("step") or 0 if p["resume"] else 0
    cancelled = False
    while True:
        if job.cancel_event.is_set() and not cancelled:
            proc.send_signal(signal.SIGINT)  # the trainer saves its checkpoint and stops
            cancelled = True
        done = proc.poll() is not None
        if metrics.is_file():
            with open(metrics, encoding="utf-8") as f:
                f.seek(offset)
                lines = f.readlines()
                if lines and not lines[-1].endswith("\n"):  # a line still being written: next time
                    lines.pop()
                offset += sum(len(ln.encode()) for ln in lines)
            for line in lines:
                record = json.loads(line)
                if "loss" in record and record["step"] > after:
                    last = record
                    emit("loss", run=p["name"], step=record["step"], loss=record["loss"])
        if done:
            break
        time.sleep(0.2)
    if cancelled:
        raise Cancelled
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise GenlabError(f"training stopped with status {proc.returncode}: {tail[0]}")
    return {"run": p["name"], "step": last.get("step"), "loss": last.get("loss")}


def list_runs(runs: Path) -> list[dict[str, Any]]:
    """Every run folder under ``runs``: its family, step and last logged loss."""
    out = []
    for d in sorted(runs.iterdir()) if runs.is_dir() else []:
        config = d / "config.json"
        if not d.is_dir() or not config.is_file():
            continue
        try:
            info = json.loads(config.read_text())
        except ValueError:
            continue
        losses = []
        metrics = d / "metrics.jsonl"
        if metrics.is_file():
            for line in metrics.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if "loss" in record:
                    losses.append([record["step"], record["loss"]])
        out.append({"name": d.name, "family": info.get("family"), "step": info.get("step"), "losses": losses[-500:]})
    return out
