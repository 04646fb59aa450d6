"""Plumbing shared by every ``genlab edit`` task: common options, reading inputs, progress, writing the
result and its figures (PSNR/SSIM against ``--reference``)."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from contextlib import contextmanager
from typing import Any

from genlab.cli.common import POSITIVE, SEED, json_out
from genlab.errors import GenlabError, GenlabWarning

EDIT_MAX_PIXELS = 16_000_000  # default --max-pixels of the edit tasks (patch-based and classic methods)

DEVICE_HELP = "cpu, cuda, cuda:N or mps (default: the best available)"
PATCH_DEVICE_HELP = "cpu (compiled loop), cuda or mps (parallel PyTorch field); default: the best available"
REFERENCE_HELP = "the clean image: PSNR and SSIM of the result (Deep Image Prior also shows PSNR as it fits)"


def add_common_options(p: argparse.ArgumentParser, *, max_pixels: int = EDIT_MAX_PIXELS) -> None:
    p.add_argument("--out", required=True, help="output image (.png, .jpg, .webp; written atomically)")
    p.add_argument("--seed", type=SEED, default=0, help="random seed: the same seed repeats the output")
    p.add_argument(
        "--max-pixels",
        type=POSITIVE,
        default=max_pixels,
        dest="max_pixels",
        help="refuse larger images (input or output) with a clear message",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object with the figures on stdout")


@contextmanager
def progress(args: argparse.Namespace, total: int | None, unit: str, desc: str):  # noqa: ANN202
    from tqdm.auto import tqdm

    # delay: work that ends (or fails on its input) within half a second prints no bar, so an error stays one line
    bar = tqdm(total=total, unit=unit, desc=desc, disable=args.quiet, file=sys.stderr, dynamic_ncols=True, delay=0.5)
    try:
        yield bar
    finally:
        bar.close()


#: work estimated to take longer than this (seconds) is announced before it starts
ANNOUNCE_SECONDS = 60.0


def announce(what: str, seconds: float, steps: int, unit: str, faster: str) -> None:
    """Before long work starts: one warning line with its estimated duration and how to make it faster.

    A warning, so that it reaches the user with --quiet (which only hides the progress bar) and on stderr with
    --json. Nothing for work estimated under :data:`ANNOUNCE_SECONDS`."""
    if seconds < ANNOUNCE_SECONDS:
        return
    minutes = max(1, round(seconds / 60))
    duration = f"about {minutes} minute{'s' * (minutes != 1)}"
    units = f"{steps:,} {unit}{'s' * (steps != 1)}"
    warnings.warn(f"{what} will take {duration} ({units}); {faster} makes it faster", GenlabWarning, stacklevel=2)


#: CPU seconds per output megapixel of the patch-based tasks at their defaults, measured on a 2-core Intel Xeon
#: (`/usr/bin/time genlab edit retarget --image camera --width 400`: 8.0 s for 0.2 MP; `edit inpaint --image camera`
#: with a 100×100 hole: 2.8 s for 0.26 MP; `edit texture --sample brick --size 512x512`: 2.5 s), rounded up
PATCH_SECONDS_PER_MEGAPIXEL = {"retarget": 40.0, "inpaint": 12.0, "reshuffle": 12.0, "quilting": 10.0}
#: Efros-Leung: seconds per (output pixel × sample pixel × window pixel), from bench/edit.py's texture figures
EFROS_LEUNG_SECONDS = 4.4e-10


def announce_patch_work(task: str, h: int, w: int) -> None:
    """The estimate of :func:`announce` for a patch-based task on an ``h×w`` output."""
    seconds = PATCH_SECONDS_PER_MEGAPIXEL[task] * h * w / 1e6
    announce(f"{task} ({w}×{h})", seconds, h * w, "pixel", "a smaller image (or --iterations 1)")


def read_input(args: argparse.Namespace, src: str) -> Any:
    from genlab.data.images import read_image

    return read_image(src, max_pixels=args.max_pixels)


def check_output_size(args: argparse.Namespace, h: int, w: int) -> None:
    if h * w > args.max_pixels:
        raise GenlabError(f"the output {w}×{h} = {w * h:,} pixels is more than --max-pixels {args.max_pixels:,}")


def finish(args: argparse.Namespace, out: Any, start: float, **figures: Any) -> int:
    """Write the output image, then print the figures (one JSON object with --json, else one line)."""
    from genlab.data.images import write_image

    write_image(args.out, out)
    figures = {
        "out": str(args.out),
        "width": int(out.shape[1]),
        "height": int(out.shape[0]),
        "seconds": round(time.perf_counter() - start, 3),
        **figures,
    }
    if args.json:
        json_out(figures)
    else:
        extra = "".join(f", {k} {v}" for k, v in figures.items() if k in ("psnr", "psnr_hole", "mean_distance"))
        print(f"wrote {figures['out']} ({figures['width']}×{figures['height']}) in {figures['seconds']:.2f} s{extra}")
    return 0


def fidelity(out: Any, reference_src: str | None, args: argparse.Namespace, hole: Any = None) -> dict[str, float]:
    """PSNR and SSIM against ``--reference`` (and inside the hole, if one is given)."""
    if not reference_src:
        return {}
    from genlab.eval.fidelity import psnr, ssim

    ref = read_input(args, reference_src)
    if ref.shape != out.shape:
        raise GenlabError(
            f"--reference is {ref.shape[1]}×{ref.shape[0]} but the output is {out.shape[1]}×{out.shape[0]}"
        )
    figures = {"psnr": round(psnr(out, ref), 3), "ssim": round(ssim(out, ref), 4)}
    if hole is not None and hole.any():
        figures |= {"psnr_hole": round(psnr(out, ref, hole), 3), "ssim_hole": round(ssim(out, ref, hole), 4)}
    return figures


def patchmatch_fn(device_name: str | None) -> Any:
    """The compiled CPU PatchMatch, or the PyTorch variant on a GPU."""
    import functools

    from genlab.edit.patchmatch import patchmatch
    from genlab.runtime import best_device

    device = best_device(device_name)
    if device.type == "cpu":
        return patchmatch
    from genlab.edit.patchmatch_torch import patchmatch_torch

    return functools.partial(patchmatch_torch, device=device)
