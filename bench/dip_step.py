"""Benchmark: the cost of one Deep Image Prior step, one JSON object on stdout.

    python bench/dip_step.py                                  # 512² astronaut, width 32, 1 thread
    python bench/dip_step.py --sizes 256 512 --widths 16 32   # a grid
    python bench/dip_step.py --keep-mmap                      # as before the fix: glibc returns large blocks

Per step: wall seconds, user and system CPU seconds (getrusage, this process) and minor page faults, each the
median over the steps after the first (which allocates the optimizer state) of each repeat, and the spread of
the repeats' medians. CPU time is the figure to compare on a shared machine: wall time there depends on the
other processes. ``--keep-mmap`` runs without :func:`genlab.memory.reuse_freed_memory` (the step as it was before
the fix: every large activation a fresh ``mmap``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import time

import numpy as np
import torch

import genlab.edit.dip as dip
from genlab.data.images import bundled_image


def step_costs(image: np.ndarray, width: int, threads: int, steps: int) -> dict[str, float]:
    """Median per-step wall, user, sys seconds and minor faults over ``steps`` steps (after the first)."""
    marks: list[tuple[float, float, float, int]] = []

    def on_step(i: int, figures: dict) -> None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        marks.append((time.perf_counter(), ru.ru_utime, ru.ru_stime, ru.ru_minflt))

    cfg = dip.DIPConfig(iterations=steps + 1, width=width, threads=threads)
    dip.deep_image_prior("denoise", image, cfg, on_step=on_step)
    d = np.diff(np.array(marks, dtype=np.float64), axis=0)
    return {k: float(np.median(d[:, j])) for j, k in enumerate(("wall", "user", "sys", "minflt"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", default="astronaut")
    ap.add_argument("--sizes", type=int, nargs="+", default=[512], help="square crops of the photo")
    ap.add_argument("--widths", type=int, nargs="+", default=[32])
    ap.add_argument("--threads", type=int, default=1, help="0: torch's default")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep-mmap", action="store_true", help="without reuse_freed_memory (before the fix)")
    args = ap.parse_args()
    if args.keep_mmap:
        dip.reuse_freed_memory = contextlib.nullcontext
    photo = bundled_image(args.photo).astype(np.float32)
    photo = photo if photo.ndim == 3 else np.repeat(photo[..., None], 3, 2)
    rows = []
    for size in args.sizes:
        for width in args.widths:
            runs = [step_costs(photo[:size, :size], width, args.threads, args.steps) for _ in range(args.repeats)]
            row = {"size": size, "width": width}
            for k in ("wall", "user", "sys", "minflt"):
                values = [r[k] for r in runs]
                row[k] = round(statistics.median(values), 4 if k != "minflt" else None)
                row[f"{k}_range"] = [round(min(values), 4), round(max(values), 4)]
            row["cpu_per_megapixel"] = round((row["user"] + row["sys"]) / (size * size / 1e6), 3)
            rows.append(row)
    print(
        json.dumps(
            {
                "photo": args.photo,
                "threads": args.threads or torch.get_num_threads(),
                "reuse_freed_memory": not args.keep_mmap,
                "load_average": os.getloadavg(),
                "torch": torch.__version__,
                "steps": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
