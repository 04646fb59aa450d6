"""Benchmark: the shipped digits diffusion model — quality vs model evaluations, guidance, and speed.

    pip install "genlab[fid,bench]"
    python bench/diffusion.py                       # ~30 minutes on 2 CPU cores; one JSON object on stdout
    python bench/diffusion.py --samples 200 --no-inception    # a quick look

Reference: the held-out 20% of scikit-learn's digits (359 images, never trained on). For each sampler (DDPM
ancestral, DDIM η=0, DPM-Solver++(2M)) and each number of model evaluations (10, 20, 50, 100, 1000), class-balanced
samples are scored by FID and KID with two feature sets — Inception-v3 (2048-d) and genlab's digits classifier
(its penultimate layer) — and by class accuracy (the classifier's verdict). Then classifier-free guidance w ∈
{0, 1, 3, 5} and classifier guidance s ∈ {1, 3} at DPM-Solver++ 20. Speed: training images/s (preset tiny) and
sampling images/s. Writes bench/diffusion.png (FID vs evaluations) unless --no-plot.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

import genlab
from genlab.assets import default_model
from genlab.eval.fid import InceptionFeatures, inception_weights
from genlab.eval.image import generate_for_eval, image_metrics, reference_images
from genlab.train.run import train

NFES = (10, 20, 50, 100, 1000)
SAMPLERS = ("ddpm", "ddim", "dpmpp")


def score(model, reference, cache, *, samples, judge, inception, **controls) -> dict:  # noqa: ANN001, ANN003
    images, labels, rate = generate_for_eval(model, samples, seed=0, progress=False, **controls)
    out = image_metrics(images, reference, labels=labels, classifier=judge, inception=inception, real_cache=cache)
    return {k: round(v, 4) for k, v in out.items()} | {"images_per_s": round(rate, 1)}


def train_speed(steps: int = 40) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        train(
            family="diffusion",
            data="digits",
            out=Path(tmp) / "run",
            quiet=True,
            overrides={"steps": steps, "log_every": 10, "eval_every": 10**6, "sample_every": 0},
        )
        rates = [
            json.loads(line)["img_per_s"]
            for line in (Path(tmp) / "run" / "metrics.jsonl").open()
            if "img_per_s" in line
        ][1:]
    return {"preset": "tiny", "images_per_s": round(sorted(rates)[len(rates) // 2], 1)}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("fid_classifier", "fid_inception") if k in results["ddpm"]["1000"]]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6))
    for ax, key in zip(axes if len(keys) > 1 else [axes], keys, strict=True):
        for sampler in SAMPLERS:
            ax.plot(NFES, [results[sampler][str(n)][key] for n in NFES], marker="o", label=sampler)
        ax.set_xscale("log")
        ax.set_xlabel("model evaluations")
        ax.set_ylabel(key.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("genlab diffusion-digits: FID vs sampling budget (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--no-inception", action="store_true")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    model = genlab.load(task="image")
    judge = genlab.load(default_model("classifier"), task="classifier")
    noisy = genlab.load(default_model("guidance"), task="classifier")
    reference = (reference_images(model, "digits").images + 1) / 2
    inception = None if args.no_inception or inception_weights() is None else InceptionFeatures()
    cache: dict = {}
    kw = dict(samples=args.samples, judge=judge, inception=inception)
    result: dict = {
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(), "torch": torch.__version__},
        "model": str(default_model("image")),
        "reference_images": len(reference),
        "samples": args.samples,
    }
    for sampler in SAMPLERS:
        result[sampler] = {}
        for nfe in NFES:
            result[sampler][str(nfe)] = score(model, reference, cache, sampler=sampler, steps=nfe, **kw)
            print(sampler, nfe, json.dumps(result[sampler][str(nfe)]), file=sys.stderr)
    result["guidance_dpmpp_20"] = {}
    for w in (0, 1, 3, 5):
        result["guidance_dpmpp_20"][str(w)] = score(
            model, reference, cache, sampler="dpmpp", steps=20, guidance=w, **kw
        )
        print("w", w, json.dumps(result["guidance_dpmpp_20"][str(w)]), file=sys.stderr)
    result["classifier_guidance_dpmpp_20"] = {}
    for s in (1, 3):
        result["classifier_guidance_dpmpp_20"][str(s)] = score(
            model, reference, cache, sampler="dpmpp", steps=20, classifier=noisy, classifier_scale=s, **kw
        )
    key = "fid_inception" if inception is not None else "fid_classifier"
    ratio = result["dpmpp"]["20"][key] / result["ddpm"]["1000"][key]
    best = max(result["guidance_dpmpp_20"].values(), key=lambda r: r["class_accuracy"])
    result["targets"] = {
        f"dpmpp20_over_ddpm1000_{key}": round(ratio, 3),
        "dpmpp20_within_10pct_of_ddpm1000": ratio <= 1.10,
        "ddim_paper_ratio_50_over_1000": round(4.67 / 3.17, 3),
        "best_guidance_class_accuracy": best["class_accuracy"],
        "class_accuracy_at_least_95pct": best["class_accuracy"] >= 0.95,
    }
    result["train_speed_cpu"] = train_speed()
    if not args.no_plot:
        plot(result, Path(__file__).with_name("diffusion.png"))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
