"""``genlab edit``: example-based image editing — parse, call :mod:`genlab.edit`, report.

Heavy modules (numba, torch, OpenCV) are imported inside the handlers so that ``genlab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from genlab.cli.common import Formatter, json_out
from genlab.errors import GenlabError

MAX_PIXELS = 16_000_000  # default --max-pixels for patch-based and classic methods
DIP_MAX_PIXELS = 4_000_000  # default --max-pixels (output) for Deep Image Prior: its activations grow with it

EXAMPLES = """\
examples:
  genlab edit texture --sample brick --size 512x512 --out big_brick.png                  # image quilting
  genlab edit texture --sample my_texture.png --size 128x128 --method efros-leung --out grown.png
  genlab edit inpaint --image photo.jpg --mask hole.png --out filled.png                 # PatchMatch, multi-scale EM
  genlab edit inpaint --image photo.jpg --mask hole.png --method telea --out telea.png   # or ns, biharmonic, dip
  genlab edit retarget --image photo.jpg --width 480 --out narrow.png
  genlab edit reshuffle --image photo.jpg --region 40,60,120,140 --to 200,60 --out moved.png
  genlab edit denoise --image noisy.png --out clean.png --reference clean_truth.png      # Deep Image Prior
  genlab edit superres --image small.png --scale 4 --out big.png                         # --method bicubic to compare
  genlab edit nnf --a a.png --b b.png --patch 7 --out flow.png                           # + flow-reconstruction.png

Images: any file Pillow reads (8/16-bit, grey, palette, CMYK, alpha over white) or a bundled photo by name:
astronaut brick camera chelsea coffee coins grass gravel horse logo moon page rocket text china flower.
Masks: white = hole; soft masks are thresholded at 0.5. Guide: docs/edit.md.
"""


# --- shared plumbing --------------------------------------------------------------------------------------
def _common(p: argparse.ArgumentParser, *, max_pixels: int = MAX_PIXELS) -> None:
    p.add_argument("--out", required=True, help="output image (.png, .jpg, .webp; written atomically)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed repeats the output")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=max_pixels,
        dest="max_pixels",
        help="refuse larger images (input or output) with a clear message",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object with the figures on stdout")


PATCH_DEVICE_HELP = "cpu (compiled loop), cuda or mps (parallel PyTorch field); default: the best available"


def _patch_options(p: argparse.ArgumentParser, patch: int) -> None:
    p.add_argument("--patch", type=int, default=patch, help="patch side in pixels")
    p.add_argument("--iterations", type=int, default=3, help="PatchMatch iterations per EM step")
    p.add_argument("--device", help=PATCH_DEVICE_HELP)


DIP_ITERATIONS_HELP = "optimizer steps (default per task: denoise 1000, dejpeg 600, superres 1000, inpaint 1500)"
DEVICE_HELP = "cpu, cuda, cuda:N or mps (default: the best available)"
REFERENCE_HELP = "the clean image: PSNR and SSIM of the result (Deep Image Prior also shows PSNR as it fits)"


def _dip_options(p: argparse.ArgumentParser, *, own_iterations_and_device: bool = True) -> None:
    g = p.add_argument_group("Deep Image Prior (--method dip)")
    if own_iterations_and_device:
        g.add_argument("--iterations", type=int, help=DIP_ITERATIONS_HELP + "; the paper used 1,800-3,000")
        g.add_argument("--device", help=DEVICE_HELP)
    g.add_argument("--width", type=int, default=32, help="channels per level (128 = the paper's 2.2 M-parameter net)")
    g.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
    g.add_argument(
        "--reg-noise",
        type=float,
        default=1 / 30,
        dest="reg_noise",
        help="std of the noise added to the input at every step (0: off)",
    )
    g.add_argument("--average", type=float, default=0.99, help="exponential average of the outputs (0: last output)")
    g.add_argument("--time-budget", type=float, default=0.0, dest="time_budget", help="stop after this many seconds")
    g.add_argument(
        "--min-loss",
        type=float,
        default=0.0,
        dest="min_loss",
        help="stop when the data term falls below this (denoising with noise σ/255: use (σ/255)²)",
    )
    g.add_argument(
        "--patience",
        type=int,
        default=0,
        help="stop when the variance of the last 64 outputs has not improved for this many steps (ES-WMV; 0: off)",
    )
    g.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads (0: torch's default); one is often faster for small images or a busy CPU",
    )


@contextmanager
def _progress(args: argparse.Namespace, total: int | None, unit: str, desc: str):  # noqa: ANN202
    from tqdm.auto import tqdm

    # delay: work that ends (or fails on its input) within half a second prints no bar, so an error stays one line
    bar = tqdm(total=total, unit=unit, desc=desc, disable=args.quiet, file=sys.stderr, dynamic_ncols=True, delay=0.5)
    try:
        yield bar
    finally:
        bar.close()


def _read(args: argparse.Namespace, src: str) -> Any:
    from genlab.data.images import read_image

    return read_image(src, max_pixels=args.max_pixels)


def _check_output_size(args: argparse.Namespace, h: int, w: int) -> None:
    if h * w > args.max_pixels:
        raise GenlabError(f"the output {w}×{h} = {w * h:,} pixels is more than --max-pixels {args.max_pixels:,}")


def _finish(args: argparse.Namespace, out: Any, start: float, **figures: Any) -> int:
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


def _field_fn(device_name: str | None) -> Any:
    """The compiled CPU PatchMatch, or the PyTorch variant on a GPU."""
    import functools

    from genlab.edit.patchmatch import patchmatch
    from genlab.runtime import best_device

    device = best_device(device_name)
    if device.type == "cpu":
        return patchmatch
    from genlab.edit.patchmatch_torch import patchmatch_torch

    return functools.partial(patchmatch_torch, device=device)


def _fidelity(out: Any, reference_src: str | None, args: argparse.Namespace, hole: Any = None) -> dict[str, float]:
    """PSNR and SSIM against ``--reference`` (and inside the hole, if one is given)."""
    if not reference_src:
        return {}
    from genlab.eval.fidelity import psnr, ssim

    ref = _read(args, reference_src)
    if ref.shape != out.shape:
        raise GenlabError(
            f"--reference is {ref.shape[1]}×{ref.shape[0]} but the output is {out.shape[1]}×{out.shape[0]}"
        )
    figures = {"psnr": round(psnr(out, ref), 3), "ssim": round(ssim(out, ref), 4)}
    if hole is not None and hole.any():
        figures |= {"psnr_hole": round(psnr(out, ref, hole), 3), "ssim_hole": round(ssim(out, ref, hole), 4)}
    return figures


def _synthesis_config(args: argparse.Namespace, shape: tuple[int, ...]) -> Any:
    """The synthesis parameters from the command line, checked against an image of ``shape``."""
    from genlab.edit.patchmatch import check_patch
    from genlab.edit.synthesis import SynthesisConfig

    if args.iterations < 1:
        raise GenlabError(f"--iterations {args.iterations}: must be at least 1")
    check_patch(shape, args.patch)
    return SynthesisConfig(patch=args.patch, iterations=args.iterations, seed=args.seed)


# --- texture ----------------------------------------------------------------------------------------------
def cmd_texture(args: argparse.Namespace) -> int:
    from genlab.edit.masks import parse_size
    from genlab.edit.texture import efros_leung, quilt

    sample = _read(args, args.sample)
    h, w = parse_size(args.size)
    _check_output_size(args, h, w)
    start = time.perf_counter()
    if args.method == "quilting":
        with _progress(args, None, "block", "quilting") as bar:
            out = quilt(
                sample,
                (h, w),
                block=args.block,
                overlap=args.overlap,
                tolerance=args.tolerance,
                seed=args.seed,
                progress=bar.update,
            )
    else:
        with _progress(args, h * w, "px", "Efros-Leung") as bar:
            out = efros_leung(
                sample,
                (h, w),
                window=args.window,
                error_threshold=args.error_threshold,
                max_error=args.max_error,
                seed=args.seed,
                progress=bar.update,
            )
    seconds = time.perf_counter() - start
    return _finish(args, out, start, method=args.method, seconds_per_megapixel=round(seconds / (h * w / 1e6), 3))


def _add_texture(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "texture",
        help="grow a larger texture from a sample (quilting or Efros-Leung)",
        formatter_class=Formatter,
        description="Synthesize a texture of --size from a sample image. quilting (Efros & Freeman 2001) stitches "
        "blocks along minimum-error cuts: fast (about a second for 512x512). efros-leung (1999) grows the image "
        "pixel by pixel from a seed by non-parametric sampling: slow (about 0.1-5 ms per pixel, growing with "
        "--window and the sample size), keep the sample small (e.g. 64x64).",
        epilog="""examples:
  genlab edit texture --sample brick --size 512x512 --out big_brick.png
  genlab edit texture --sample gravel.png --size 400x300 --block 48 --overlap 8 --out gravel_big.png
  genlab edit texture --sample small.png --size 128x128 --method efros-leung --window 11 --out grown.png
""",
    )
    p.add_argument("--sample", required=True, help="the example texture (a file or a bundled photo's name)")
    p.add_argument("--size", default="256x256", help="output WIDTHxHEIGHT")
    p.add_argument("--method", default="quilting", choices=["quilting", "efros-leung"], help="synthesis method")
    g = p.add_argument_group("quilting")
    g.add_argument("--block", type=int, help="block side (default: a quarter of the sample's shorter side, 8-64)")
    g.add_argument("--overlap", type=int, help="overlap between blocks (default: block/6)")
    g.add_argument("--tolerance", type=float, default=0.1, help="blocks within (1+tolerance)·best error are drawn")
    g = p.add_argument_group("efros-leung")
    g.add_argument("--window", type=int, default=11, help="odd side of the neighbourhood window")
    g.add_argument(
        "--error-threshold",
        type=float,
        default=0.1,
        dest="error_threshold",
        help="ε: values are drawn from windows within (1+ε)·best distance",
    )
    g.add_argument(
        "--max-error",
        type=float,
        default=0.3,
        dest="max_error",
        help="largest accepted distance (raised by 10%% when a pass fills nothing)",
    )
    _common(p)
    p.set_defaults(func=cmd_texture)


# --- inpaint ----------------------------------------------------------------------------------------------
def cmd_inpaint(args: argparse.Namespace) -> int:
    from genlab.edit.masks import check_hole, read_mask

    image = _read(args, args.image)
    hole = read_mask(args.mask, image.shape, max_pixels=args.max_pixels)
    start = time.perf_counter()
    if not check_hole(hole):
        return _finish(args, image, start, method=args.method, hole_pixels=0, **_fidelity(image, args.reference, args))
    extra: dict[str, Any] = {}
    if args.method == "patchmatch":
        from genlab.edit.synthesis import count_levels, hole_levels, inpaint

        args.iterations = 3 if args.iterations is None else args.iterations
        cfg = _synthesis_config(args, image.shape)
        levels = min(count_levels(image.shape, cfg), hole_levels(hole, cfg.patch))
        with _progress(args, levels, "level", "inpainting") as bar:
            out = inpaint(image, hole, cfg, field_fn=_field_fn(args.device), progress=lambda n: bar.update(1))
    elif args.method == "dip":
        out, extra = _run_dip(args, "inpaint", image, mask=hole)
    elif args.method == "diffusion":
        from genlab.edit.diffusion import inpaint

        model, controls = _text2image(args)
        out = inpaint(model, image, hole, args.prompt or "", resample=args.resample, **controls)
    else:
        from genlab.edit.baselines import inpaint_baseline

        out = inpaint_baseline(image, hole, args.method, radius=args.radius)
    figures = _fidelity(out, args.reference, args, hole)
    return _finish(args, out, start, method=args.method, hole_pixels=int(hole.sum()), **figures, **extra)


def _add_inpaint(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "inpaint",
        help="fill a masked hole (PatchMatch, Deep Image Prior, diffusion from a prompt, Telea, NS, biharmonic)",
        formatter_class=Formatter,
        description="Fill the white part of --mask from the rest of the image. patchmatch: multi-scale EM with a "
        "PatchMatch field (Wexler et al. 2007; Barnes et al. 2009), copies texture and structure from elsewhere "
        "in the photo; known pixels are never changed. dip: Deep Image Prior (minutes). diffusion: a text-to-image "
        "model draws the hole from --prompt (RePaint resampling at the model's size), known pixels kept exactly. "
        "telea, ns, biharmonic: "
        "classic diffusion-style fills to compare with. The mask must have the image's size; white = hole, soft "
        "masks are thresholded at 0.5; an empty mask copies the input (with a warning).",
        epilog="""examples:
  genlab edit inpaint --image photo.jpg --mask hole.png --out filled.png
  genlab edit inpaint --image photo.jpg --mask hole.png --patch 7 --iterations 5 --out filled.png
  genlab edit inpaint --image damaged.png --mask hole.png --reference original.png --method telea --json --out t.png
  genlab edit inpaint --image photo.png --mask hole.png --method dip --iterations 2000 --out dip.png
  genlab edit inpaint --method diffusion --image scene.png --mask m.png --prompt "a blue star" --out out.png
""",
    )
    p.add_argument("--image", required=True, help="the photo (a file or a bundled photo's name)")
    p.add_argument("--mask", required=True, help="the hole mask (white = fill), same size as the image")
    p.add_argument(
        "--method", default="patchmatch", choices=["patchmatch", "dip", "diffusion", "telea", "ns", "biharmonic"]
    )
    p.add_argument(
        "--iterations",
        type=int,
        help=f"patchmatch: PatchMatch iterations per EM step (default 3); dip: {DIP_ITERATIONS_HELP}",
    )
    p.add_argument("--device", help=f"patchmatch: {PATCH_DEVICE_HELP}; dip: {DEVICE_HELP}")
    p.add_argument("--reference", help=REFERENCE_HELP + "; for inpainting also inside the hole")
    g = p.add_argument_group("patchmatch")
    g.add_argument("--patch", type=int, default=9, help="patch side in pixels")
    g = p.add_argument_group("telea and ns")
    g.add_argument("--radius", type=int, default=3, help="neighbourhood radius in pixels")
    _dip_options(p, own_iterations_and_device=False)
    _diffusion_options(p)
    p.add_argument("--resample", type=int, default=2, help="diffusion: RePaint resampling passes per step")
    _common(p)
    p.set_defaults(func=cmd_inpaint)


# --- retarget and reshuffle -------------------------------------------------------------------------------
def cmd_retarget(args: argparse.Namespace) -> int:
    from genlab.edit.synthesis import count_levels, retarget

    image = _read(args, args.image)
    h0, w0 = image.shape[:2]
    if args.width is None and args.height is None:
        raise GenlabError("give --width, --height or both (the new size in pixels)")
    h = h0 if args.height is None else args.height
    w = w0 if args.width is None else args.width
    _check_output_size(args, h, w)
    cfg = _synthesis_config(args, image.shape)
    start = time.perf_counter()
    with _progress(args, count_levels((min(h0, h), min(w0, w)), cfg), "level", "retargeting") as bar:
        out = retarget(image, h, w, cfg, field_fn=_field_fn(args.device), progress=lambda n: bar.update(1))
    return _finish(args, out, start, source_width=w0, source_height=h0)


def _add_retarget(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "retarget",
        help="change an image's width/height keeping its content (bidirectional similarity)",
        formatter_class=Formatter,
        description="Resize without squashing: the output is made of the input's patches (coherence) and keeps "
        "all of them (completeness) — Simakov et al. 2008's bidirectional similarity, solved with PatchMatch "
        "(Barnes et al. 2009), the size changed in small steps at the coarsest scale. Works for shrinking and "
        "enlarging; a few seconds for a 0.2-megapixel photo.",
        epilog="""examples:
  genlab edit retarget --image photo.jpg --width 480 --out narrow.png
  genlab edit retarget --image chelsea --width 600 --height 250 --out wide_cat.png
""",
    )
    p.add_argument("--image", required=True, help="the photo (a file or a bundled photo's name)")
    p.add_argument("--width", type=int, help="new width in pixels (unchanged if not given)")
    p.add_argument("--height", type=int, help="new height in pixels (unchanged if not given)")
    _patch_options(p, 7)
    _common(p)
    p.set_defaults(func=cmd_retarget)


def cmd_reshuffle(args: argparse.Namespace) -> int:
    from genlab.edit.masks import parse_point, parse_region
    from genlab.edit.synthesis import reshuffle

    image = _read(args, args.image)
    region = parse_region(args.region, image.shape)
    to = parse_point(args.to, (region[3] - region[1], region[2] - region[0]), image.shape)
    cfg = _synthesis_config(args, image.shape)
    if args.margin is not None and args.margin < 0:
        raise GenlabError(f"--margin {args.margin}: must be at least 0")
    start = time.perf_counter()
    with _progress(args, None, "level", "reshuffling") as bar:
        out = reshuffle(
            image,
            region,
            to,
            cfg,
            margin=args.margin,
            field_fn=_field_fn(args.device),
            progress=lambda n: bar.update(1),
        )
    return _finish(args, out, start, region=list(region), to=list(to))


def _add_reshuffle(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "reshuffle",
        help="move a region; its old place and the seams are re-synthesized",
        formatter_class=Formatter,
        description="Move the box --region to --to (its new top-left corner). The moved pixels are kept; the old "
        "place and a seam of --margin pixels around both places are filled by PatchMatch hole filling from the "
        "rest of the image (never from the region itself, so the object moves rather than doubles).",
        epilog="""examples:
  genlab edit reshuffle --image photo.jpg --region 40,60,120,140 --to 200,60 --out moved.png
  genlab edit reshuffle --image chelsea --region 60,90,160,170 --to 250,90 --margin 12 --out cat.png
""",
    )
    p.add_argument("--image", required=True, help="the photo (a file or a bundled photo's name)")
    p.add_argument("--region", required=True, help="x0,y0,x1,y1: the box to move (x1, y1 exclusive)")
    p.add_argument("--to", required=True, help="x,y: the box's new top-left corner")
    p.add_argument("--margin", type=int, help="seam width re-synthesized around both places (default: the patch)")
    _patch_options(p, 9)
    _common(p)
    p.set_defaults(func=cmd_reshuffle)


# --- Deep Image Prior tasks -------------------------------------------------------------------------------
def _run_dip(args: argparse.Namespace, task: str, image: Any, *, mask: Any = None) -> tuple[Any, dict[str, Any]]:
    from genlab.edit.dip import DEFAULT_ITERATIONS, DIPConfig, deep_image_prior
    from genlab.runtime import best_device

    scale = getattr(args, "scale", 1) if task == "superres" else 1
    h, w = image.shape[0] * scale, image.shape[1] * scale
    _check_output_size(args, h, w)
    iterations = args.iterations if args.iterations is not None else DEFAULT_ITERATIONS[task]
    if iterations < 1:
        raise GenlabError(f"--iterations {iterations}: must be at least 1")
    if args.width < 1:
        raise GenlabError(f"--width {args.width}: must be at least 1")
    cfg = DIPConfig(
        width=args.width,
        lr=args.lr,
        reg_noise=args.reg_noise,
        average=args.average,
        iterations=iterations,
        time_budget=args.time_budget,
        min_loss=args.min_loss,
        patience=args.patience,
        threads=args.threads,
        seed=args.seed,
    )
    reference = _read(args, args.reference) if args.reference else None
    with _progress(args, iterations, "step", f"DIP {task}") as bar:

        def step(i: int, figures: dict) -> None:
            bar.set_postfix(
                {k: round(v, 4 if k == "loss" else 2) for k, v in figures.items() if k != "iteration"}, refresh=False
            )
            bar.update(1)

        result = deep_image_prior(
            task, image, cfg, mask=mask, scale=scale, reference=reference, device=best_device(args.device), on_step=step
        )
    extra = {
        "iterations": result.iterations,
        "stopped": result.stopped,
        "parameters": result.num_params,
        "history": result.history,
    }
    return result.image, extra


def cmd_restore(args: argparse.Namespace) -> int:
    image = _read(args, args.image)
    start = time.perf_counter()
    if args.task == "superres" and args.scale < 2:
        raise GenlabError(f"--scale {args.scale}: must be at least 2")
    if args.method == "bicubic":
        from genlab.edit.baselines import bicubic_upscale

        _check_output_size(args, image.shape[0] * args.scale, image.shape[1] * args.scale)
        out, extra = bicubic_upscale(image, args.scale), {}
    else:
        out, extra = _run_dip(args, args.task, image)
    return _finish(args, out, start, method=args.method, **_fidelity(out, args.reference, args), **extra)


RESTORE_HELP = {
    "denoise": (
        "remove noise with a Deep Image Prior",
        "genlab edit denoise --image noisy.png --out clean.png\n"
        "  genlab edit denoise --image noisy.png --min-loss 0.0096 --out clean.png   # noise σ = 25/255\n"
        "  genlab edit denoise --image noisy.png --reference truth.png --json --out clean.png",
    ),
    "dejpeg": (
        "remove JPEG artifacts with a Deep Image Prior",
        "genlab edit dejpeg --image blocky.jpg --out smooth.png\n"
        "  genlab edit dejpeg --image blocky.jpg --patience 100 --out smooth.png      # early stop (ES-WMV)",
    ),
    "superres": (
        "enlarge ×2-×8 (Deep Image Prior, or bicubic to compare)",
        "genlab edit superres --image small.png --scale 4 --out big.png\n"
        "  genlab edit superres --image small.png --scale 4 --method bicubic --out bicubic.png\n"
        "  genlab edit superres --image small.png --scale 8 --time-budget 300 --out big.png",
    ),
}


def _add_restore(tasks: argparse._SubParsersAction, task: str) -> None:
    short, examples = RESTORE_HELP[task]
    p = tasks.add_parser(
        task,
        help=short,
        formatter_class=Formatter,
        description=f"{short[0].upper() + short[1:]}. Deep Image Prior (Ulyanov et al. 2018) fits an untrained "
        "encoder-decoder, from a fixed noise input, to this image alone; the network reproduces natural structure "
        "before noise, so stopping early restores. On 2 CPU cores a step takes ~0.1-0.4 s for a 256x256 image with "
        "the default --width 32, so the defaults take a few minutes; use a GPU (--device cuda) for --width 128. Any "
        "size works (padded to a multiple of 32, cropped back).",
        epilog=f"examples:\n  {examples}\n",
    )
    p.add_argument("--image", required=True, help="the degraded image (a file or a bundled photo's name)")
    choices = ["dip", "bicubic"] if task == "superres" else ["dip"]
    p.add_argument("--method", default="dip", choices=choices, help="restoration method")
    if task == "superres":
        p.add_argument("--scale", type=int, default=4, help="enlargement factor")
    p.add_argument("--reference", help=REFERENCE_HELP)
    _dip_options(p)
    _common(p, max_pixels=DIP_MAX_PIXELS)
    p.set_defaults(func=cmd_restore, task=task)


# --- nnf --------------------------------------------------------------------------------------------------
def cmd_nnf(args: argparse.Namespace) -> int:
    import numpy as np

    from genlab.data.images import write_image
    from genlab.edit.patchmatch import exact_nnf, grid_shape, nnf_to_rgb, vote

    a, b = _read(args, args.a), _read(args, args.b)
    if args.iterations < 0:
        raise GenlabError(f"--iterations {args.iterations}: must be at least 0")
    field_fn = _field_fn(args.device)
    per_iteration: list[float] = []
    start = time.perf_counter()
    with _progress(args, args.iterations, "iteration", "PatchMatch") as bar:

        def on_iteration(i: int, nnf: Any) -> None:
            per_iteration.append(round(nnf.mean_distance(), 5))
            bar.update(1)

        nnf = field_fn(a, b, args.patch, args.iterations, seed=args.seed, on_iteration=on_iteration)
    seconds = time.perf_counter() - start
    acc, weight = vote(b, nnf, a.shape)
    reconstruction = acc / np.maximum(weight, 1e-8)[..., None]
    out = Path(args.out)
    recon_path = Path(args.reconstruction or out.with_name(f"{out.stem}-reconstruction{out.suffix or '.png'}"))
    write_image(recon_path, reconstruction)
    figures: dict[str, Any] = {
        "reconstruction": str(recon_path),
        "field_seconds": round(seconds, 4),
        "patch": args.patch,
        "iterations": args.iterations,
        "mean_distance": round(nnf.mean_distance(), 5),
        "mean_distance_per_iteration": per_iteration,
    }
    if args.exact:
        pairs = np.prod(grid_shape(a.shape, args.patch)) * np.prod(grid_shape(b.shape, args.patch))
        if pairs > 4e9:
            raise GenlabError(f"--exact compares {pairs:,.0f} pairs of patches (limit 4e9): use smaller images")
        exact = exact_nnf(a, b, args.patch).mean_distance()
        figures["exact_mean_distance"] = round(exact, 5)
        if exact > 0:
            figures["relative_to_exact"] = round(nnf.mean_distance() / exact, 4)
    return _finish(args, nnf_to_rgb(nnf, grid_shape(b.shape, args.patch)), start, **figures)


def _add_nnf(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "nnf",
        help="the PatchMatch nearest-neighbour field from A to B, colour-coded, and A rebuilt from B's patches",
        formatter_class=Formatter,
        description="Compute the PatchMatch field (Barnes et al. 2009: random initialization, propagation, random "
        "search) from every patch of A to a similar patch of B. --out gets the field colour-coded as in the paper "
        "(red = matched x, blue = matched y; one pixel per patch of A, so it is patch-1 pixels smaller); the "
        "reconstruction of A from B's patches goes beside it. About 0.2-0.3 s for 256x256 and 0.5-1.3 s for 512x512 "
        "with 7x7 patches and 5 iterations on 2 CPU cores (plus a one-time compilation of a few seconds).",
        epilog="""examples:
  genlab edit nnf --a a.png --b b.png --patch 7 --out flow.png
  genlab edit nnf --a coffee --b chelsea --iterations 10 --json --out flow.png
  genlab edit nnf --a small_a.png --b small_b.png --exact --json --out flow.png   # compare with brute force
""",
    )
    p.add_argument("--a", required=True, help="image A (whose patches are matched)")
    p.add_argument("--b", required=True, help="image B (where matches are searched)")
    p.add_argument("--patch", type=int, default=7, help="patch side in pixels")
    p.add_argument("--iterations", type=int, default=5, help="PatchMatch iterations")
    p.add_argument("--reconstruction", help="where to write A rebuilt from B (default: OUT-reconstruction.png)")
    p.add_argument("--exact", action="store_true", help="also compute the exact field by brute force (small images)")
    p.add_argument("--device", help=PATCH_DEVICE_HELP)
    _common(p)
    p.set_defaults(func=cmd_nnf)


# --- text-to-image editing -----------------------------------------------------------------------------
def _diffusion_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("diffusion (a text-to-image model)")
    g.add_argument("--prompt", help="what to draw; empty = unconditional")
    g.add_argument("--negative-prompt", dest="negative_prompt", default="", help="what guidance steers away from")
    g.add_argument("--model", help="text-to-image checkpoint (default: the shipped text2image-shapes)")
    g.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance w")
    g.add_argument("--steps", type=int, default=50, help="denoising steps")


def _text2image(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    import genlab
    from genlab.runtime import best_device, make_generator

    device = best_device(args.device)
    model = genlab.load(args.model, task="text2image" if args.model is None else "image", device=device)
    if model.family != "text2image":
        raise GenlabError(
            f"--model: {args.model} holds a {model.family} model; diffusion editing needs a text2image one"
        )
    controls = dict(
        guidance=args.guidance,
        negative_prompt=args.negative_prompt,
        steps=args.steps,
        generator=make_generator(args.seed, device),
    )
    return model, controls


def cmd_img2img(args: argparse.Namespace) -> int:
    from genlab.edit.diffusion import img2img

    image = _read(args, args.image)
    start = time.perf_counter()
    model, controls = _text2image(args)
    out = img2img(model, image, args.prompt or "", strength=args.strength, **controls)
    return _finish(args, out, start, method="sdedit", strength=args.strength, **_fidelity(out, args.reference, args))


def _add_img2img(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "img2img",
        help="redraw an image from a prompt, keeping its layout (SDEdit)",
        formatter_class=Formatter,
        description="SDEdit (Meng et al. 2022) with a text-to-image model: the image's latent is noised to "
        "strength·T and denoised with the prompt. --strength 0 returns the image unchanged; 1 ignores it. The "
        "model works at its training size; the result is resized back to the image's size.",
        epilog="""examples:
  genlab edit img2img --image scene.png --prompt "a large blue star in the center" --strength 0.6 --out out.png
""",
    )
    p.add_argument("--image", required=True, help="the image (a file or a bundled photo's name)")
    p.add_argument("--strength", type=float, default=0.6, help="how far to noise the image, 0 … 1")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--reference", help=REFERENCE_HELP)
    _diffusion_options(p)
    _common(p)
    p.set_defaults(func=cmd_img2img)


def add_edit(sub: argparse._SubParsersAction) -> None:
    """Register ``genlab edit`` and its tasks."""
    p = sub.add_parser(
        "edit",
        help="edit photos: texture, inpaint, retarget, reshuffle, denoise, dejpeg, superres, nnf, img2img",
        formatter_class=Formatter,
        description="Example-based image editing (lecture 01, 'Image Manipulation with Example'): texture "
        "synthesis (Efros-Leung, image quilting), PatchMatch editing (hole filling, retargeting, reshuffling), "
        "Deep Image Prior restoration, and classic baselines to compare with. Every task has its own --help.",
        epilog=EXAMPLES,
    )
    tasks = p.add_subparsers(title="tasks", metavar="TASK", required=True)
    _add_texture(tasks)
    _add_inpaint(tasks)
    _add_retarget(tasks)
    _add_reshuffle(tasks)
    for task in ("denoise", "dejpeg", "superres"):
        _add_restore(tasks, task)
    _add_nnf(tasks)
    _add_img2img(tasks)
