"""The Train tab's jobs: training runs under ``--runs``.

A training run is the ``genlab train`` command itself, started as a child process into a folder under ``--runs``:
its ``metrics.jsonl`` is read as it grows and each logged step becomes a ``loss`` event; cancelling the job sends it
Ctrl-C (SIGINT), on which the trainer saves its checkpoint and stops, so the run can be resumed later. An image
family also writes a grid of samples a few times a run (``sample_every``); each new grid becomes a ``sample`` event,
served by :func:`sample_file`.
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

from genlab.data.image_data import BUNDLED_IMAGES
from genlab.data.text import BUNDLED_TEXT
from genlab.errors import GenlabError
from genlab.serve.jobs import Cancelled, Job

#: what the Train tab offers: family → the ``genlab train`` kind; each kind's bundled data (never a path: the page
#: does not name files on the server)
TRAINABLE = {"gan": "image", "vae": "image", "pixelcnn": "image", "diffusion": "image", "lstm": "text", "gpt": "text"}
DATA = {"image": BUNDLED_IMAGES, "text": tuple(BUNDLED_TEXT)}
PRESETS = ("tiny", "small", "base")
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SAMPLE_NAME = re.compile(r"step_[0-9]{6}\.png")  # what the trainer writes under RUN/samples/
SAMPLES_PER_RUN = 5  # sample grids an image run writes when --set sample_every is not given


def train_params(raw: dict, runs: Path) -> dict[str, Any]:
    family = str(raw.get("family", "gan"))
    if family not in TRAINABLE:
        raise GenlabError(f"family: {family!r}; the Train tab trains {', '.join(TRAINABLE)}")
    kind = TRAINABLE[family]
    data = str(raw.get("data", DATA[kind][0]))
    if data not in DATA[kind]:
        raise GenlabError(f"data: {data!r}; a {family} trains on {' or '.join(DATA[kind])} here")
    preset = str(raw.get("preset", "tiny"))
    if preset not in PRESETS:
        raise GenlabError(f"preset: {preset!r}; choose {', '.join(PRESETS)}")
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
    if resume:  # a run continues on its own data, whatever the form says
        info = json.loads((runs / name / "config.json").read_text())
        family, data = info.get("family"), (info.get("run") or {}).get("data")
        if family not in TRAINABLE or data not in DATA[TRAINABLE[family]]:
            raise GenlabError(f"resume: {name} is a {family} run on {data}; resume it with genlab train --resume")
    if not resume and (runs / name).exists():
        raise GenlabError(f"name: {name} exists under --runs; resume it or choose another name")
    return {"family": family, "data": data, "name": name, "steps": steps, "preset": preset, "set": settings,
            "resume": resume}  # fmt: skip


def run_training(runs: Path, job: Job, emit: Any) -> dict[str, Any]:
    p = job.params
    kind = TRAINABLE[p["family"]]
    out = runs / p["name"]
    argv = [sys.executable, "-m", "genlab", "train", kind, "--data", p["data"], "--model", p["family"], "--preset",
            p["preset"], "--steps", str(p["steps"]), "--out", str(out), "--quiet"]  # fmt: skip
    for setting in p["set"]:
        argv += ["--set", setting]
    if kind == "image" and not any(s.startswith("sample_every=") for s in p["set"]):
        argv += ["--set", f"sample_every={max(1, p['steps'] // SAMPLES_PER_RUN)}"]
    if p["resume"]:
        argv.append("--resume")
    runs.mkdir(parents=True, exist_ok=True)
    log = runs / f".{p['name']}.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    metrics, offset, last = out / "metrics.jsonl", 0, {}
    seen = set(_samples(out))
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
        for name in _samples(out):
            if name not in seen:
                seen.add(name)
                emit("sample", run=p["name"], step=int(name[5:11]), url=f"/api/runs/{p['name']}/samples/{name}")
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
        samples = _samples(d)
        out.append({"name": d.name, "family": info.get("family"), "data": (info.get("run") or {}).get("data"),
                    "step": info.get("step"), "losses": losses[-500:],
                    "sample": f"/api/runs/{d.name}/samples/{samples[-1]}" if samples else None})  # fmt: skip
    return out


def _samples(run: Path) -> list[str]:
    """The sample grids a run has written so far, oldest first (a grid being written is not listed: the trainer
    writes each to a temporary name and renames it)."""
    folder = run / "samples"
    return sorted(f.name for f in folder.iterdir() if SAMPLE_NAME.fullmatch(f.name)) if folder.is_dir() else []


def sample_file(runs: Path, run: str, name: str) -> Path | None:
    """A run's sample grid, or None: both names are checked against their patterns, so no path from the client
    reaches the filesystem."""
    if not (RUN_NAME.fullmatch(run) and SAMPLE_NAME.fullmatch(name)):
        return None
    path = runs / run / "samples" / name
    return path if path.is_file() else None
