"""Benchmark: what Deep Image Prior's defaults cost in quality, one JSON object on stdout.

    python bench/dip_defaults.py                        # width 32 × 1000 steps against 16 × 500 and 32 × 250
    python bench/dip_defaults.py --configs 16x500 32x1000 --size 128

Denoising at σ = 25 on the view bench/edit.py uses (a bundled photo, every other pixel, top-left --size²): PSNR
of the result and the best PSNR on the way for each WIDTHxITERATIONS, with the CPU seconds (user + sys) it took.
The defaults for a 512² photo (genlab.edit.dip.dip_defaults) are run here on this smaller view to keep the
benchmark short; the PSNR at a given width and step count is what is compared.
"""

from __future__ import annotations

import argparse
import json
import resource

import numpy as np

from genlab.data.images import bundled_image
from genlab.edit.dip import DIPConfig, deep_image_prior
from genlab.eval.fidelity import psnr


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", default="astronaut")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--configs", nargs="+", default=["32x1000", "16x500", "32x250"], help="WIDTHxITERATIONS")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    clean = bundled_image(args.photo)[::2, ::2][: args.size, : args.size].astype(np.float32)
    noisy = np.clip(clean + np.random.default_rng(args.seed).normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    rows = []
    for spec in args.configs:
        width, iterations = (int(v) for v in spec.split("x"))
        cfg = DIPConfig(width=width, iterations=iterations, threads=args.threads, seed=args.seed, log_every=50)
        before = cpu_seconds()
        result = deep_image_prior("denoise", noisy, cfg, reference=clean)
        rows.append(
            {
                "width": width,
                "iterations": iterations,
                "psnr": round(psnr(result.image, clean), 2),
                "best_psnr_on_the_way": round(max(h["psnr"] for h in result.history), 2),
                "cpu_seconds": round(cpu_seconds() - before, 1),
            }
        )
    view = f"{args.photo}, every other pixel, top-left {args.size}²"
    print(json.dumps({"image": view, "noisy_psnr": round(psnr(noisy, clean), 2), "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
