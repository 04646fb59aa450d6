"""``genlab edit``: example-based image editing — parse, call :mod:`genlab.edit`, report. The patch-based and
classic tasks live here; Deep Image Prior and text-to-image editing in :mod:`genlab.cli.edit_learned`, the
PatchMatch field (``nnf``) in :mod:`genlab.cli.edit_nnf`, neural style transfer in :mod:`genlab.cli.edit_style`.

Heavy modules (numba, torch, OpenCV) are imported inside the handlers so that ``genlab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from genlab.cli.common import NATURAL, POSITIVE, Formatter, Num
from genlab.cli.edit_common import (
    EFROS_LEUNG_SECONDS,
    PATCH_DEVICE_HELP,
    REFERENCE_HELP,
    add_common_options,
    announce,
    announce_patch_work,
    check_output_size,
    fidelity,
    finish,
    patchmatch_fn,
    progress,
    read_input,
)
from genlab.cli.edit_learned import (
    DIP_ITERATIONS_HELP,
    add_diffusion_options,
    add_dip_options,
    add_img2img,
    add_restore,
    load_text2image,
    run_dip,
)
from genlab.cli.edit_nnf import add_nnf
from genlab.cli.edit_style import add_style
from genlab.errors import GenlabError

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
  genlab edit style --content photo.jpg --style painting.png --out styled.png            # Gatys et al. 2016

Images: any file Pillow reads (8/16-bit, grey, palette, CMYK, alpha over white) or a bundled photo by name:
astronaut brick camera chelsea coffee coins grass gravel horse logo moon page rocket text china flower.
Masks: white = hole; soft masks are thresholded at 0.5. Guide: docs/edit.md.
"""


def _patch_options(p: argparse.ArgumentParser, patch: int) -> None:
    p.add_argument("--patch", type=POSITIVE, default=patch, help="patch side in pixels")
    p.add_argument("--iterations", type=Num(int, 1, 1000), default=3, help="PatchMatch iterations per EM step")
    p.add_argument("--device", help=PATCH_DEVICE_HELP)


def _synthesis_config(args: argparse.Namespace, shape: tuple[int, ...]) -> Any:
    """The synthesis parameters from the command line, checked against an image of ``shape``."""
    from genlab.edit.patchmatch import check_patch
    from genlab.edit.synthesis import SynthesisConfig

    check_patch(shape, args.patch)
    return SynthesisConfig(patch=args.patch, iterations=args.iterations, seed=args.seed)


# --- texture ----------------------------------------------------------------------------------------------
def cmd_texture(args: argparse.Namespace) -> int:
    from genlab.edit.masks import parse_size
    from genlab.edit.texture import efros_leung, quilt

    sample = read_input(args, args.sample)
    h, w = parse_size(args.size)
    check_output_size(args, h, w)
    if args.method == "quilting":
        announce_patch_work("quilting", h, w)
    else:
        seconds = EFROS_LEUNG_SECONDS * h * w * sample.shape[0] * sample.shape[1] * args.window**2
        announce(f"Efros-Leung ({w}×{h})", seconds, h * w, "pixel", "--method quilting, a smaller sample or --window")
    start = time.perf_counter()
    if args.method == "quilting":
        with progress(args, None, "block", "quilting") as bar:
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
        with progress(args, h * w, "px", "Efros-Leung") as bar:
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
    return finish(args, out, start, method=args.method, seconds_per_megapixel=round(seconds / (h * w / 1e6), 3))


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
    g.add_argument("--block", type=POSITIVE, help="block side (default: a quarter of the sample's shorter side, 8-64)")
    g.add_argument("--overlap", type=NATURAL, help="overlap between blocks (default: block/6)")
    g.add_argument(
        "--tolerance", type=Num(float, 0, 100), default=0.1, help="blocks within (1+tolerance)·best error are drawn"
    )
    g = p.add_argument_group("efros-leung")
    g.add_argument("--window", type=POSITIVE, default=11, help="odd side of the neighbourhood window")
    g.add_argument(
        "--error-threshold",
        type=Num(float, 0, 100),
        default=0.1,
        dest="error_threshold",
        help="ε: values are drawn from windows within (1+ε)·best distance",
    )
    g.add_argument(
        "--max-error",
        type=Num(float, gt=0, hi=100),
        default=0.3,
        dest="max_error",
        help="largest accepted distance (raised by 10%% when a pass fills nothing)",
    )
    add_common_options(p)
    p.set_defaults(func=cmd_texture)


# --- inpaint ----------------------------------------------------------------------------------------------
def cmd_inpaint(args: argparse.Namespace) -> int:
    from genlab.edit.masks import check_hole, read_mask

    image = read_input(args, args.image)
    hole = read_mask(args.mask, image.shape, max_pixels=args.max_pixels)
    start = time.perf_counter()
    if not check_hole(hole):
        return finish(args, image, start, method=args.method, hole_pixels=0, **fidelity(image, args.reference, args))
    extra: dict[str, Any] = {}
    if args.method == "patchmatch":
        from genlab.edit.synthesis import count_levels, hole_levels, inpaint

        args.iterations = 3 if args.iterations is None else args.iterations
        cfg = _synthesis_config(args, image.shape)
        announce_patch_work("inpaint", *image.shape[:2])
        levels = min(count_levels(image.shape, cfg), hole_levels(hole, cfg.patch))
        with progress(args, levels, "level", "inpainting") as bar:
            out = inpaint(image, hole, cfg, field_fn=patchmatch_fn(args.device), progress=lambda n: bar.update(1))
    elif args.method == "dip":
        out, extra = run_dip(args, "inpaint", image, mask=hole)
    elif args.method == "diffusion":
        from genlab.data.domain import check_domain
        from genlab.edit.diffusion import inpaint

        model, controls = load_text2image(args)
        check_domain(model, image, args.image, alternative="--method patchmatch (or telea), which suits photos")
        out = inpaint(model, image, hole, args.prompt or "", resample=args.resample, **controls)
    else:
        from genlab.edit.baselines import inpaint_baseline

        out = inpaint_baseline(image, hole, args.method, radius=args.radius)
    figures = fidelity(out, args.reference, args, hole)
    return finish(args, out, start, method=args.method, hole_pixels=int(hole.sum()), **figures, **extra)


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
        "--method",
        default="patchmatch",
        choices=["patchmatch", "dip", "diffusion", "telea", "ns", "biharmonic"],
        help="patchmatch: copy patches from the rest of the image (Wexler/Barnes); dip: Deep Image Prior; diffusion: "
        "the shipped text-to-image model (RePaint); telea, ns: OpenCV's classic fills; biharmonic: scikit-image's",
    )
    p.add_argument(
        "--iterations",
        type=Num(int, 1, 100_000),
        help=f"patchmatch: PatchMatch iterations per EM step (default 3); dip: {DIP_ITERATIONS_HELP}",
    )
    p.add_argument(
        "--device",
        help="cpu, cuda, cuda:N or mps (default: the best available); patchmatch on cpu runs a compiled loop, on a "
        "GPU a parallel PyTorch field",
    )
    p.add_argument("--reference", help=REFERENCE_HELP + "; for inpainting also inside the hole")
    g = p.add_argument_group("patchmatch")
    g.add_argument("--patch", type=POSITIVE, default=9, help="patch side in pixels")
    g = p.add_argument_group("telea and ns")
    g.add_argument("--radius", type=POSITIVE, default=3, help="neighbourhood radius in pixels")
    add_dip_options(p, own_iterations_and_device=False)
    add_diffusion_options(p)
    p.add_argument("--resample", type=POSITIVE, default=2, help="diffusion: RePaint resampling passes per step")
    add_common_options(p)
    p.set_defaults(func=cmd_inpaint)


# --- retarget and reshuffle -------------------------------------------------------------------------------
def cmd_retarget(args: argparse.Namespace) -> int:
    from genlab.edit.synthesis import count_levels, retarget

    image = read_input(args, args.image)
    h0, w0 = image.shape[:2]
    if args.width is None and args.height is None:
        raise GenlabError("give --width, --height or both (the new size in pixels)")
    h = h0 if args.height is None else args.height
    w = w0 if args.width is None else args.width
    for name, new, old in (("width", w, w0), ("height", h, h0)):
        if new > 4 * old:  # the size changes in small steps: a larger factor takes hours and is rarely what is meant
            raise GenlabError(f"--{name} {new}: at most 4× the input's {name} ({old}); enlarge in several runs")
    check_output_size(args, h, w)
    cfg = _synthesis_config(args, image.shape)
    announce_patch_work("retarget", h, w)
    start = time.perf_counter()
    with progress(args, count_levels((min(h0, h), min(w0, w)), cfg), "level", "retargeting") as bar:
        out = retarget(image, h, w, cfg, field_fn=patchmatch_fn(args.device), progress=lambda n: bar.update(1))
    return finish(args, out, start, source_width=w0, source_height=h0)


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
    p.add_argument("--width", type=POSITIVE, help="new width in pixels (unchanged if not given)")
    p.add_argument("--height", type=POSITIVE, help="new height in pixels (unchanged if not given)")
    _patch_options(p, 7)
    add_common_options(p)
    p.set_defaults(func=cmd_retarget)


def cmd_reshuffle(args: argparse.Namespace) -> int:
    from genlab.edit.masks import parse_point, parse_region
    from genlab.edit.synthesis import reshuffle

    image = read_input(args, args.image)
    region = parse_region(args.region, image.shape)
    to = parse_point(args.to, (region[3] - region[1], region[2] - region[0]), image.shape)
    cfg = _synthesis_config(args, image.shape)
    announce_patch_work("reshuffle", *image.shape[:2])
    if args.margin is not None and args.margin < 0:
        raise GenlabError(f"--margin {args.margin}: must be at least 0")
    start = time.perf_counter()
    with progress(args, None, "level", "reshuffling") as bar:
        out = reshuffle(
            image,
            region,
            to,
            cfg,
            margin=args.margin,
            field_fn=patchmatch_fn(args.device),
            progress=lambda n: bar.update(1),
        )
    return finish(args, out, start, region=list(region), to=list(to))


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
    p.add_argument("--margin", type=NATURAL, help="seam width re-synthesized around both places (default: the patch)")
    _patch_options(p, 9)
    add_common_options(p)
    p.set_defaults(func=cmd_reshuffle)


def add_edit(sub: argparse._SubParsersAction) -> None:
    """Register ``genlab edit`` and its tasks."""
    p = sub.add_parser(
        "edit",
        help="edit photos: texture, inpaint, retarget, reshuffle, denoise, dejpeg, superres, nnf, img2img, style",
        formatter_class=Formatter,
        description="Example-based image editing (lecture 01, 'Image Manipulation with Example'): texture "
        "synthesis (Efros-Leung, image quilting), PatchMatch editing (hole filling, retargeting, reshuffling), "
        "Deep Image Prior restoration, neural style transfer, and classic baselines to compare with. Every task has "
        "its own --help.",
        epilog=EXAMPLES,
    )
    tasks = p.add_subparsers(title="tasks", metavar="TASK", required=True)
    _add_texture(tasks)
    _add_inpaint(tasks)
    _add_retarget(tasks)
    _add_reshuffle(tasks)
    for task in ("denoise", "dejpeg", "superres"):
        add_restore(tasks, task)
    add_nnf(tasks)
    add_img2img(tasks)
    add_style(tasks)
