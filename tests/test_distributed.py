import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_one_model(tmp_path, corpus_file):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "genlab",
        "train",
        "text",
        "--data",
        str(corpus_file),
        "--out",
        str(out),
        "--steps",
        "12",
        "--set",
        "n_layer=1",
        "--set",
        "n_head=2",
        "--set",
        "n_embd=16",
        "--set",
        "block_size=16",
        "--set",
        "batch_size=4",
        "--set",
        "log_every=4",
        "--set",
        "eval_every=6",
        "--device",
        "cpu",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={"OMP_NUM_THREADS": "1", **_env()})
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 alone speaks: one data line, one model line, one "saved" line (rank 1 saved nothing itself)
    lines = proc.stderr.replace("\r", "\n").splitlines()
    assert sum(ln.startswith("data: ") for ln in lines) == 1, proc.stderr[-3000:]
    assert sum(ln.startswith("model: ") for ln in lines) == 1, proc.stderr[-3000:]
    assert sum(ln.startswith("saved ") for ln in proc.stdout.splitlines()) == 1, proc.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["step"] == 12
    records = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    assert [r["step"] for r in records if "loss" in r] == [4, 8, 12]  # one writer: rank 0
    assert any("val_loss" in r for r in records)
    assert "held_out" in records[-1]


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
