"""``genlab edit`` tasks that fit or run a network: Deep Image Prior restoration (denoise, dejpeg, superres;
also ``inpaint --method dip``) and text-to-image editing (img2img; also ``inpaint --method diffusion``)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from genlab.cli.common import FRACTION, NATURAL, POSITIVE, Formatter, Num
from genlab.cli.edit_common import (
    DEVICE_HELP,
    REFERENCE_HELP,
    add_common_options,
    announce,
    check_output_size,
    fidelity,
    finish,
    progress,
    read_input,
)
from genlab.errors import GenlabError

DIP_MAX_PIXELS = 4_000_000  # default --max-pixels (output) for Deep Image Prior: its activations grow with it
DIP_ITERATIONS_HELP = (
    "optimizer steps (default per task up to 256x256 output: denoise 1000, dejpeg 600, superres 1000, inpaint 1500; "
    "larger outputs get fewer, at least 300, costing what these cost at 256x256)"
)
#: what Deep Image Prior is and costs: printed once, in each restoration task's description
DIP_PARAGRAPH = (
    "Deep Image Prior (Ulyanov et al. 2018) fits an untrained encoder-decoder, from a fixed noise input, to this "
    "image alone; the network reproduces natural structure before noise, so stopping early restores. Up to 256x256 "
    "the defaults are width 32 and the full steps (denoise: about 4 minutes of one CPU core); larger outputs get "
    "width 16 and the steps that cost the same (a 512x512 photo: 500 steps, at some loss of quality: "
    "docs/edit.md). A run estimated at over a minute is announced before it starts. Use a GPU (--device cuda) for "
    "--width 128. Any size works (padded to a multiple of 32, cropped back)."
)


def add_dip_options(p: argparse.ArgumentParser, *, own_iterations_and_device: bool = True) -> None:
    g = p.add_argument_group("Deep Image Prior (--method dip)")
    if own_iterations_and_device:
        g.add_argument(
            "--iterations", type=Num(int, 1, 100_000), help=DIP_ITERATIONS_HELP + "; the paper used 1,800-3,000"
        )
        g.add_argument("--device", help=DEVICE_HELP)
    g.add_argument(
        "--width",
        type=Num(int, 1, 1024),
        help="channels per level (default: 32 up to 256x256 output, 16 beyond; 128 = the paper's 2.2 M-parameter net)",
    )
    g.add_argument("--lr", type=Num(float, gt=0, hi=10), default=0.01, help="Adam learning rate")
    g.add_argument(
        "--reg-noise",
        type=Num(float, 0, 10),
        default=1 / 30,
        dest="reg_noise",
        help="std of the noise added to the input at every step (0: off; default: 1/30, the paper's)",
    )
    g.add_argument(
        "--average", type=Num(float, 0, lt=1), default=0.99, help="exponential average of the outputs (0: last output)"
    )
    g.add_argument(
        "--time-budget", type=Num(float, 0), default=0.0, dest="time_budget", help="stop after this many seconds"
    )
    g.add_argument(
        "--min-loss",
        type=Num(float, 0),
        default=0.0,
        dest="min_loss",
        help="stop when the data term falls below this (denoising with noise σ/255: use (σ/255)²)",
    )
    g.add_argument(
        "--patience",
        type=NATURAL,
        default=0,
        help="stop when the variance of the last 64 outputs has not improved for this many steps (ES-WMV; 0: off)",
    )
    g.add_argument(
        "--threads",
        type=NATURAL,
        default=0,
        help="CPU threads (0: torch's default); one is often faster for small images or a busy CPU",
    )


# --- Deep Image Prior tasks -------------------------------------------------------------------------------
def run_dip(args: argparse.Namespace, task: str, image: Any, *, mask: Any = None) -> tuple[Any, dict[str, Any]]:
    from genlab.edit.dip import DIPConfig, deep_image_prior, dip_defaults, step_seconds
    from genlab.runtime import best_device

    scale = getattr(args, "scale", 1) if task == "superres" else 1
    h, w = image.shape[0] * scale, image.shape[1] * scale
    check_output_size(args, h, w)
    default_iterations, default_width = dip_defaults(task, h * w)
    iterations = args.iterations if args.iterations is not None else default_iterations
    width = args.width if args.width is not None else default_width
    device = best_device(args.device)
    if device.type == "cpu":  # the measured cost is a CPU one (one thread: with more, or a busy CPU, it differs)
        announce(
            f"Deep Image Prior ({task}, {w}×{h}, width {width})",
            iterations * step_seconds(h * w, width),
            iterations,
            "step",
            "--iterations, --width, --time-budget or --device cuda",
        )
    cfg = DIPConfig(
        width=width,
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
    reference = read_input(args, args.reference) if args.reference else None
    with progress(args, iterations, "step", f"DIP {task}") as bar:

        def step(i: int, figures: dict) -> None:
            bar.set_postfix(
                {k: round(v, 4 if k == "loss" else 2) for k, v in figures.items() if k != "iteration"}, refresh=False
            )
            bar.update(1)

        result = deep_image_prior(
            task, image, cfg, mask=mask, scale=scale, reference=reference, device=device, on_step=step
        )
    extra = {
        "iterations": result.iterations,
        "network_width": width,
        "stopped": result.stopped,
        "parameters": result.num_params,
        "history": result.history,
    }
    return result.image, extra


def cmd_restore(args: argparse.Namespace) -> int:
    image = read_input(args, args.image)
    start = time.perf_counter()
    if args.task == "superres" and args.scale < 2:
        raise GenlabError(f"--scale {args.scale}: must be at least 2")
    if args.method == "bicubic":
        from genlab.edit.baselines import bicubic_upscale

        check_output_size(args, image.shape[0] * args.scale, image.shape[1] * args.scale)
        out, extra = bicubic_upscale(image, args.scale), {}
    else:
        out, extra = run_dip(args, args.task, image)
    return finish(args, out, start, method=args.method, **fidelity(out, args.reference, args), **extra)


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


def add_restore(tasks: argparse._SubParsersAction, task: str) -> None:
    short, examples = RESTORE_HELP[task]
    p = tasks.add_parser(
        task,
        help=short,
        formatter_class=Formatter,
        description=f"{short[0].upper() + short[1:]}. {DIP_PARAGRAPH}",
        epilog=f"examples:\n  {examples}\n",
    )
    p.add_argument("--image", required=True, help="the degraded image (a file or a bundled photo's name)")
    choices = ["dip", "bicubic"] if task == "superres" else ["dip"]
    p.add_argument("--method", default="dip", choices=choices, help="restoration method")
    if task == "superres":
        p.add_argument("--scale", type=POSITIVE, default=4, help="enlargement factor")
    p.add_argument("--reference", help=REFERENCE_HELP)
    add_dip_options(p)
    add_common_options(p, max_pixels=DIP_MAX_PIXELS)
    p.set_defaults(func=cmd_restore, task=task)


# --- text-to-image editing -------------------------------------------------------------------------------
def add_diffusion_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("diffusion (a text-to-image model)")
    g.add_argument("--prompt", help="what to draw; empty = unconditional")
    g.add_argument("--negative-prompt", dest="negative_prompt", default="", help="what guidance steers away from")
    g.add_argument("--model", help="text-to-image checkpoint (default: the shipped text2image-shapes)")
    g.add_argument("--guidance", type=Num(float, 0, 100), default=3.0, help="classifier-free guidance w")
    g.add_argument("--steps", type=POSITIVE, default=50, help="denoising steps")


def load_text2image(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from genlab.checkpoint import load_model
    from genlab.runtime import best_device, make_generator

    device = best_device(args.device)
    model = load_model(args.model, task="text2image" if args.model is None else "image", device=device)
    if model.condition != "text" or not hasattr(model, "img2img"):
        raise GenlabError(
            f"--model: {args.model} holds a {model.family} model; diffusion editing needs a text-to-image one"
        )
    controls = dict(
        guidance=args.guidance,
        negative_prompt=args.negative_prompt,
        steps=args.steps,
        generator=make_generator(args.seed, device),
    )
    return model, controls


def cmd_img2img(args: argparse.Namespace) -> int:
    from genlab.data.domain import check_domain
    from genlab.edit.diffusion import img2img

    image = read_input(args, args.image)
    start = time.perf_counter()
    model, controls = load_text2image(args)
    check_domain(model, image, args.image)
    out = img2img(model, image, args.prompt or "", strength=args.strength, **controls)
    return finish(args, out, start, method="sdedit", strength=args.strength, **fidelity(out, args.reference, args))


def add_img2img(tasks: argparse._SubParsersAction) -> None:
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
    p.add_argument("--strength", type=FRACTION, default=0.6, help="how far to noise the image, 0 … 1")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--reference", help=REFERENCE_HELP)
    add_diffusion_options(p)
    add_common_options(p)
    p.set_defaults(func=cmd_img2img)
