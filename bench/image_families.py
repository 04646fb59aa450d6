"""Benchmark: the image families on the 8×8 digits (17 grey levels) — likelihood, sample quality, coverage and
speed — beside the two baselines a likelihood must beat (a uniform model and an independent-pixel model) and the
diffusion model given the GAN's training time. One JSON object on stdout, the targets beside the figures.

    PYTHONPATH=src python bench/image_families.py --out runs/image-bench      # ~25 minutes on 2 CPU cores
    PYTHONPATH=src python bench/image_families.py --quick                      # a smoke run: about 2 minutes

Every stage is the ``genlab`` command a user would type (a subprocess, ``--json``), its run in ``--out``:
  pixelcnn   genlab train image --data digits --model pixelcnn --preset tiny                   (class-conditional)
  vae        genlab train image --data digits --model vae --preset tiny --set iwae_samples=5000 (class-conditional)
  gan        genlab train image --data digits --model gan --preset tiny --set num_classes=0    (unconditional: its
             coverage of the classes is the mode-collapse test)
  diffusion  genlab train image --data digits --model diffusion --preset tiny --size 8 --time-budget <the GAN's
             training time> --set num_classes=0
then ``genlab eval image RUN --data digits --fid --samples 1000 --features classifier`` for each (held-out split;
FID/KID on the digits classifier's features; class accuracy of conditional samples, class shares of unconditional
ones). Baselines computed here on the same split: uniform (log₂ 17 bits per dimension) and independent pixels (a
categorical per pixel position, add-one smoothed, fitted on the training split).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("pixelcnn", "vae", "gan", "diffusion")
SAMPLES = 1000
QUICK_STEPS = 30


def genlab(*args: object) -> dict:
    """Run ``genlab ARGS --json`` in a fresh process (this checkout's genlab); its JSON object."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "genlab", *map(str, args), "--json"]
    print("$ genlab " + " ".join(map(str, args)), file=sys.stderr)
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"bench/image_families.py: genlab {' '.join(map(str, args[:3]))} failed ({done.returncode})")
    return json.loads(done.stdout)


def independent_pixels() -> dict:
    """Held-out bits per dimension of a categorical distribution per pixel position (add-one smoothing), fitted on
    the training split — the likelihood a model that ignores how pixels depend on each other reaches."""
    from genlab.data.image_data import data_levels, load_image_set, quantize, split_images

    data = load_image_set("digits", 8)
    train, val = split_images(data, 0.2)
    levels = data_levels(train.images)
    q_train, q_val = quantize(train.images, levels).flatten(1).numpy(), quantize(val.images, levels).flatten(1).numpy()
    counts = np.stack([np.bincount(q_train[:, d], minlength=levels) for d in range(q_train.shape[1])]) + 1.0
    log_p = np.log2(counts / counts.sum(1, keepdims=True))
    bits = -log_p[np.arange(q_val.shape[1])[None, :], q_val].mean()
    return {"levels": levels, "uniform_bits_per_dim": math.log2(levels), "independent_bits_per_dim": float(bits)}


def train(family: str, out: Path, quick: bool, gan_seconds: float | None) -> dict:
    extra: list[object] = []
    if family == "vae":
        extra = ["--set", f"iwae_samples={200 if quick else 5000}"]
    elif family == "gan":
        extra = ["--set", "num_classes=0"]
    elif family == "diffusion":
        extra = ["--size", 8, "--set", "num_classes=0", "--set", "sample_every=0"]
        if gan_seconds is not None:
            extra += ["--time-budget", max(1, round(gan_seconds))]
    steps = ["--steps", QUICK_STEPS] if quick else []
    start = time.perf_counter()
    summary = genlab("train", "image", "--data", "digits", "--model", family, "--preset", "tiny",
                     "--out", out / family, "--force", *steps, *extra)  # fmt: skip
    return {"train_s": time.perf_counter() - start, "step": summary["step"], "held_out": summary["held_out"]}


def evaluate(family: str, out: Path, quick: bool) -> dict:
    samples = 100 if quick else SAMPLES
    args = [
        "eval",
        "image",
        out / family,
        "--data",
        "digits",
        "--fid",
        "--samples",
        samples,
        "--features",
        "classifier",
    ]
    if family == "diffusion":
        args += ["--steps", 50]  # DDIM, 50 network evaluations a sample
    figures = genlab(*args)
    evaluations = {"pixelcnn": 64, "vae": 1, "gan": 1, "diffusion": 50}[family]  # network evaluations per sample
    return figures | {"network_evals_per_sample": evaluations}


def targets(result: dict) -> dict:
    """The issue's targets met (True), missed (False) or not measured (None)."""
    fam = result.get("families", {})
    base = result.get("baselines", {})

    def get(name: str, key: str) -> float | None:
        return fam.get(name, {}).get("eval", {}).get(key)

    pcnn, indep, uniform = (
        get("pixelcnn", "bits_per_dim"),
        base.get("independent_bits_per_dim"),
        base.get("uniform_bits_per_dim"),
    )
    out: dict = {}
    out["pixelcnn_bpd_below_uniform_and_independent"] = (
        None if None in (pcnn, indep, uniform) else bool(pcnn < indep and pcnn < uniform)
    )
    share = get("gan", "min_class_share")
    out["gan_every_class_ge_5pct"] = None if share is None else bool(share >= 0.05)
    gan_fid, diff_fid = get("gan", "fid_classifier"), get("diffusion", "fid_classifier")
    out["gan_fid_within_2x_diffusion"] = None if None in (gan_fid, diff_fid) else bool(gan_fid <= 2 * diff_fid)
    elbo, iwae = get("vae", "elbo_bits_per_dim"), get("vae", "bits_per_dim")
    out["vae_iwae_tighter_than_elbo"] = None if None in (elbo, iwae) else bool(iwae < elbo)
    acc = get("vae", "class_accuracy")
    out["vae_class_accuracy_ge_0.8"] = None if acc is None else bool(acc >= 0.8)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} steps each, 100 samples: a smoke run")
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated, from {','.join(FAMILIES)}")
    args = parser.parse_args()
    names = [f.strip() for f in args.families.split(",") if f.strip()]
    if not names or any(f not in FAMILIES for f in names):
        parser.error(f"--families: choose from {','.join(FAMILIES)}")
    import torch

    result: dict = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "quick": args.quick, "data": "digits, 8×8, held-out 20% (seeded)", "samples": 100 if args.quick else SAMPLES,
        "baselines": independent_pixels(), "families": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for family in [f for f in FAMILIES if f in names]:
            gan_s = result["families"].get("gan", {}).get("train", {}).get("train_s")
            entry = {"train": train(family, out, args.quick, gan_s)}
            entry["eval"] = evaluate(family, out, args.quick)
            result["families"][family] = entry
    result["targets"] = targets(result)
    print(json.dumps(result, indent=2, allow_nan=False, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
