"""SIGKILL a real training run at 20 random moments (inside steps and inside checkpoint saves): after every kill the
folder is a whole, readable checkpoint, and the run resumed after each ends bit-identical to one never killed."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from genlab.checkpoint import load_model
from genlab.io import verify_manifest

STEPS = 150
KILLS = 20


def _command(data, out, *extra):
    sets = "n_layer=1 n_embd=16 n_head=2 block_size=16 batch_size=4 ckpt_every=1 ema=0.9 eval_every=100000 "
    sets += "eval_batches=1 log_every=1 warmup=5"
    args = [sys.executable, "-m", "genlab", "train", "text", "--data", data, "--out", out, "--quiet", *extra]
    for kv in sets.split():
        args += ["--set", kv]
    return [str(a) for a in args]


def _saved_step(out) -> int:
    try:
        return int(json.loads((out / "manifest.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return -1


def _logged_step(out) -> int:
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
        return max((json.loads(ln).get("step", 0) for ln in lines if ln.strip()), default=0)
    except (OSError, ValueError):
        return 0


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.slow
def test_kill_at_random_moments_then_resume_is_exact(tmp_path, corpus_file):
    env = os.environ | {"OMP_NUM_THREADS": "1", "GENLAB_TEST_SAVE_DELAY": "0.02"}
    ref, out = tmp_path / "ref", tmp_path / "run"
    reference = subprocess.Popen(_command(corpus_file, ref, "--steps", STEPS), env=env, stderr=subprocess.PIPE)
    rng = random.Random(15)
    inside_saves, resume = 0, []
    for kill in range(KILLS):
        proc = subprocess.Popen(_command(corpus_file, out, "--steps", STEPS, *resume), env=env, stderr=subprocess.PIPE)
        start, deadline = _saved_step(out), time.time() + 60
        while (_logged_step(out) <= start or _saved_step(out) < 1) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)  # until it trains (and has saved once): a kill during start-up tests nothing new
        time.sleep(rng.uniform(0, 0.25))
        assert proc.poll() is None, f"kill {kill}: the run ended before it ({proc.stderr.read().decode()[-2000:]})"
        inside_saves += (tmp_path / ".run.saving").exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        verify_manifest(out)  # whole: every file, its size and hash, the training state's included
        load_model(out)
        assert _saved_step(out) >= start, "a kill never loses a checkpoint already saved"
        resume = ["--resume"]
    assert inside_saves >= 3, f"only {inside_saves} of {KILLS} kills landed inside a save"
    final = subprocess.run(_command(corpus_file, out, "--steps", STEPS, *resume), env=env, capture_output=True)
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    assert reference.wait(timeout=120) == 0, reference.stderr.read().decode()[-2000:]
    reference.stderr.close()

    assert _saved_step(out) == _saved_step(ref) == STEPS
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_file(ref / name), load_file(out / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    sa = torch.load(ref / "train_state.pt", weights_only=True)
    sb = torch.load(out / "train_state.pt", weights_only=True)
    for key in ("step", "model", "optimizers", "ema", "rng_cpu"):
        assert _equal(sa[key], sb[key]), key
    steps = [json.loads(ln)["step"] for ln in (out / "metrics.jsonl").open() if "loss" in json.loads(ln)]
    assert steps == list(range(1, STEPS + 1)), "the log holds each step once, as the uninterrupted run's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "ref", "run"], "no leftovers beside it"
