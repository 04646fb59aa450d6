"""Benchmark: ``genlab compare image`` on the digits — four families, three seeds, one wall-clock budget each — timed
as a whole, with the issue's targets read from its report. One JSON object on stdout.

    PYTHONPATH=src python bench/compare_image.py --out runs/compare-digits           # ~35 minutes on 2 CPU cores
    PYTHONPATH=src python bench/compare_image.py --quick --out /tmp/cmp              # a smoke run: about 2 minutes

It runs, as a user would (a subprocess):
    genlab compare image --data digits --families vae,gan,pixelcnn,diffusion --budget 2m --seeds 3
        --features classifier --samples 500 --out OUT --json
(``--quick``: two families, 20 steps, one seed, 100 samples.) The targets:
  * the whole command in under 45 minutes;
  * the GAN does not collapse: every class ≥ 5% of its samples (by the digits classifier), in every seed;
  * the GAN's FID within 2× the diffusion model's, both trained for the same time;
  * the trilemma's direction: the GAN fastest to sample, diffusion the best FID, the VAE or PixelCNN the best
    likelihood or coverage — each reported True/False, so where this data disagrees it says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_compare(out: Path, quick: bool) -> tuple[dict, float]:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    if quick:
        setting = ["--families", "gan,pixelcnn", "--budget", "20", "--seeds", "1", "--samples", "100"]
    else:
        setting = ["--families", "vae,gan,pixelcnn,diffusion", "--budget", "2m", "--seeds", "3", "--samples", "500"]
    argv = [sys.executable, "-m", "genlab", "compare", "image", "--data", "digits", *setting,
            "--features", "classifier", "--out", str(out), "--json"]  # fmt: skip
    print("$ genlab " + " ".join(argv[3:]), file=sys.stderr)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bench/compare_image.py: genlab compare image failed ({done.returncode})")
    return json.loads(done.stdout), seconds


def mean(summary: dict, name: str, key: str) -> float | None:
    value = summary.get(name, {}).get(key)
    return value["mean"] if isinstance(value, dict) else None


def targets(result: dict, seconds: float) -> dict:
    s = result["summary"]
    fams = [n for n in s if n != "real data"]
    out: dict = {"whole_command_under_45_min": seconds < 45 * 60}
    gan_rows = [r for r in result["rows"] if r["name"] == "gan"]
    if gan_rows:
        out["gan_every_class_ge_5pct_every_seed"] = all(
            r["figures"].get("min_class_share", 0) >= 0.05 for r in gan_rows
        )
    gan_fid, diff_fid = mean(s, "gan", "fid_classifier"), mean(s, "diffusion", "fid_classifier")
    if None not in (gan_fid, diff_fid):
        out["gan_fid_within_2x_diffusion"] = gan_fid <= 2 * diff_fid

    def best(key: str, higher: bool) -> str | None:
        values = {n: mean(s, n, key) for n in fams if mean(s, n, key) is not None}
        return (max if higher else min)(values, key=values.get) if values else None

    fastest, best_fid = best("seconds_per_sample", False), best("fid_classifier", False)
    best_bpd, best_recall = best("bits_per_dim", False), best("recall_classifier", True)
    best_coverage = best("coverage_classifier", True)
    likely = {best_bpd, best_recall, best_coverage} & {"vae", "pixelcnn"}
    out["trilemma"] = {
        "fastest_sampler": fastest, "gan_fastest": fastest == "gan",
        "best_fid": best_fid, "diffusion_best_fid": best_fid == "diffusion",
        "best_bits_per_dim": best_bpd, "best_recall": best_recall, "best_coverage": best_coverage,
        "vae_or_pixelcnn_best_likelihood_or_coverage": bool(likely),
    }  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the report's folder (new or empty)")
    parser.add_argument("--quick", action="store_true", help="two families, 20 steps, one seed: a smoke run")
    args = parser.parse_args()
    import torch

    result, seconds = run_compare(args.out, args.quick)
    print(json.dumps({
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "quick": args.quick, "seconds": round(seconds, 1), "report": str(args.out),
        "summary": result["summary"], "targets": targets(result, seconds),
    }, indent=2, allow_nan=False, ensure_ascii=False))  # fmt: skip


if __name__ == "__main__":
    main()
