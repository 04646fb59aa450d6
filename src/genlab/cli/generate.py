"""``genlab generate``: text or images from a trained model (the shipped one by default)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from genlab.cli.common import FRACTION, NATURAL, POSITIVE, SEED, Formatter, Num, check_fits, json_out
from genlab.errors import GenlabError
from genlab.io import MAX_PIXELS


def cmd_generate(args: argparse.Namespace) -> int:
    if args.n is None:
        args.n = 1 if args.modality == "text" else 16
    return _generate_text(args) if args.modality == "text" else _generate_image(args)


def _generate_text(args: argparse.Namespace) -> int:
    from genlab.checkpoint import load_model
    from genlab.io import write_text
    from genlab.runtime import best_device, make_generator
    from genlab.sampling.text import check_controls, generate

    temperature = TEXT_TEMPERATURE if args.temperature is None else args.temperature
    check_controls(temperature, args.top_k, args.top_p, args.max_tokens)
    device = best_device(args.device)
    model = load_model(args.model, task="text", device=device)
    tokens = len(args.prompt.encode("utf-8")) + 1 + args.max_tokens  # at most one token per byte of the prompt
    check_fits(
        model.sampling_bytes(args.n, tokens),
        f"--n {args.n} × --max-tokens {args.max_tokens}",
        "Ask for fewer or shorter samples.",
    )
    generator = make_generator(args.seed, device)
    stream = args.stream and not args.json and args.n == 1
    if stream:
        sys.stdout.write(args.prompt)
        sys.stdout.flush()

    def emit(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    gen = generate(
        model,
        args.prompt,
        n=args.n,
        max_tokens=args.max_tokens,
        temperature=temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        stop=args.stop or (),
        generator=generator,
        on_text=emit if stream else None,
        cache=not args.no_cache,
    )
    if args.out is not None:
        write_text(args.out, "\n\n".join(args.prompt + t for t in gen.texts) + "\n")
    if args.json:
        json_out(
            {
                "prompt": args.prompt,
                "samples": gen.texts,
                "new_tokens": gen.new_tokens,
                "seconds": round(gen.seconds, 4),
                "tokens_per_s": round(gen.tokens_per_s, 1),
            }
        )
    elif stream:
        sys.stdout.write("\n")
    elif args.out is None:
        print("\n\n".join(args.prompt + t for t in gen.texts))
    else:
        print(f"wrote {args.n} sample(s) to {args.out}", file=sys.stderr)
    return 0


def _guidance_classifier(args: argparse.Namespace, device: Any) -> Any:
    from genlab.checkpoint import load_model

    if not args.classifier_scale:
        return None
    if args.classifier is None and args.model is not None:
        raise GenlabError("--classifier-scale needs --classifier DIR (a classifier trained with --set noisy=true)")
    from genlab.assets import default_model

    judge = args.classifier if args.classifier is not None else default_model("guidance")
    return load_model(judge, task="classifier", device=device)


#: the image-sampling options and their defaults (the parser's): a family takes those in its ``sampling_controls``
SAMPLER_DEFAULTS: dict[str, Any] = dict(
    sampler="ddim", steps=50, eta=0.0, spacing="auto", variance="beta", guidance=0.0, classifier_scale=0.0,
    temperature=None,
)  # fmt: skip
TEXT_TEMPERATURE = 0.8


def sampler_controls(args: argparse.Namespace, model: Any, device: Any) -> dict[str, Any]:
    """The sampling options ``model``'s family takes; one it does not take, set away from its default, is an
    error naming it."""
    given = {k: getattr(args, k, default) for k, default in SAMPLER_DEFAULTS.items()}  # eval has no --temperature
    for key, value in given.items():
        if key not in model.sampling_controls and value != SAMPLER_DEFAULTS[key]:
            raise GenlabError(f"--{key.replace('_', '-')}: a {model.family} model takes no such sampling option")
    controls = {k: v for k, v in given.items() if k in model.sampling_controls}
    if "classifier" in model.sampling_controls:
        controls["classifier"] = _guidance_classifier(args, device)
    return controls


def _generate_image(args: argparse.Namespace) -> int:
    import time

    import torch

    from genlab.checkpoint import load_model
    from genlab.runtime import best_device, make_generator
    from genlab.sampling.images import save_images

    device = best_device(args.device)
    wants_text = args.prompt != "" or args.negative_prompt is not None or args.to_prompt is not None
    default_task = "text2image" if wants_text and args.model is None else None
    model = load_model(args.model, task=default_task or "image", device=device)
    g = make_generator(args.seed, device)
    if wants_text and model.condition != "text":
        raise GenlabError(f"--prompt: this {model.family} model does not take prompts (use --class where it has)")
    count = args.frames if args.interpolate is not None or args.to_prompt is not None else args.n
    check_fits(model.sampling_bytes(count), f"{count} images at once", "Ask for fewer (--n, --frames).")
    size = model.image_size
    scale = args.scale if args.scale is not None else max(1, 48 // size)
    check_fits(
        count * (size * scale + 1) ** 2 * 3 * 4 * 2, f"--scale {scale} on {count} images", "Use a smaller --scale."
    )
    start = time.perf_counter()
    with torch.no_grad():
        out_images, nrow = (_from_prompt if model.condition == "text" else _from_class)(model, args, g, device)
    seconds = time.perf_counter() - start
    written = save_images(out_images, "samples.png" if args.out is None else args.out, nrow=nrow, scale=scale)
    n = out_images.shape[0]
    if args.json:
        json_out(
            {
                "out": written,
                "images": n,
                "seconds": round(seconds, 3),
                "images_per_s": round(n / seconds, 2),
                "sampler": args.sampler,  # the options asked for (a family without a sampler ignores them)
                "steps": args.steps,
            }
        )
    else:
        print(f"wrote {written} ({n} images in {seconds:.1f} s)", file=sys.stderr)
    return 0


def _from_class(model: Any, args: argparse.Namespace, g: Any, device: Any) -> tuple[Any, int]:
    import math

    from genlab.sampling.images import class_index, interpolation_inputs

    controls = sampler_controls(args, model, device)
    if "progress" in model.sampling_controls:
        controls["progress"] = not args.json
    if args.interpolate is not None:
        if not hasattr(model, "interpolate"):
            raise GenlabError(f"--interpolate: a {model.family} model cannot interpolate")
        ends = [e.strip() for e in args.interpolate.split(",")]
        through = args.through
        if through is None:
            through = "noise" if all(e.lstrip("-").isdigit() for e in ends) else "diffused"
        images, classes = interpolation_inputs(model, ends, through, max_pixels=args.max_pixels)
        for key in ("classifier", "classifier_scale", "progress"):  # interpolation: classifier-free guidance only
            controls.pop(key, None)
        frames = model.interpolate(
            args.frames,
            through=through,
            images=images,
            classes=classes,
            strength=args.strength,
            generator=g,
            **controls,
        )
        return frames, args.frames
    if args.class_ is not None and model.condition != "class":
        raise GenlabError(f"--class: a {model.family} model draws no classes")
    y = class_index(model, args.class_) if args.class_ is not None else None
    images = model.sample(args.n, y, generator=g, **controls)
    return images, min(args.n, max(1, math.ceil(math.sqrt(args.n))))


def _from_prompt(model: Any, args: argparse.Namespace, g: Any, device: Any) -> tuple[Any, int]:
    import math

    if args.class_ is not None or args.classifier_scale != 0 or args.interpolate is not None:
        raise GenlabError("a text-to-image model takes --prompt (and --to-prompt to interpolate), not classes")
    sampling = dict(sampler=args.sampler, steps=args.steps, eta=args.eta, spacing=args.spacing, variance=args.variance)
    if args.to_prompt is not None:
        frames = model.interpolate_prompts(
            args.prompt, args.to_prompt, args.frames, generator=g, guidance=args.guidance, **sampling
        )
        return frames, args.frames
    images = model.sample(
        args.n,
        args.prompt,
        generator=g,
        guidance=args.guidance,
        negative_prompt=args.negative_prompt or "",
        progress=not args.json,
        **sampling,
    )
    return images, min(args.n, max(1, math.ceil(math.sqrt(args.n))))


def add_sampler_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("image sampling")
    g.add_argument(
        "--sampler",
        default=SAMPLER_DEFAULTS["sampler"],
        choices=["ddpm", "ddim", "dpmpp"],
        help="ddpm: ancestral (Algorithm 2); ddim: deterministic at --eta 0; dpmpp: DPM-Solver++(2M)",
    )
    g.add_argument(
        "--steps",
        type=POSITIVE,
        default=SAMPLER_DEFAULTS["steps"],
        help="denoising steps = model evaluations (ddpm: 1000 is exact)",
    )
    g.add_argument(
        "--eta", type=FRACTION, default=SAMPLER_DEFAULTS["eta"], help="ddim: 0 deterministic … 1 DDPM-like noise"
    )
    g.add_argument(
        "--spacing",
        default=SAMPLER_DEFAULTS["spacing"],
        choices=["auto", "uniform", "quadratic", "logsnr"],
        help="timesteps to visit: uniform in t, quadratic (dense near 0), uniform in log-SNR; auto: logsnr for dpmpp",
    )
    g.add_argument(
        "--variance",
        default=SAMPLER_DEFAULTS["variance"],
        choices=["beta", "beta_tilde"],
        help="ddpm: σ²=β or the posterior β̃",
    )
    g.add_argument(
        "--guidance",
        type=Num(float, 0, 100),
        default=SAMPLER_DEFAULTS["guidance"],
        help="classifier-free guidance w (0 = the plain model)",
    )
    g.add_argument("--classifier", help="noisy-image classifier for classifier guidance (DIR)")
    g.add_argument(
        "--classifier-scale",
        type=Num(float, 0, 1000),
        default=SAMPLER_DEFAULTS["classifier_scale"],
        dest="classifier_scale",
        help="classifier guidance scale s on ∇ log p(y|x_t)",
    )


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="sample from a model (the shipped one by default)",
        formatter_class=Formatter,
        description="Generate text or images with a trained model (the shipped default when --model is omitted). "
        "Text: temperature, top-k and top-p (nucleus) sampling, stop strings, a KV cache so each token costs one "
        "step; an empty prompt starts after a newline; a prompt longer than the context keeps its last tokens. "
        "Images: DDPM, DDIM or DPM-Solver++ sampling, class conditions, classifier-free and classifier guidance, "
        "interpolation; --out X.png writes a grid, --out DIR/ one PNG per sample.",
        epilog="""examples:
  genlab generate text --prompt "In the beginning" --max-tokens 200 --seed 1
  genlab generate text --model runs/my-gpt --prompt "..." --temperature 0.8 --top-k 50 --top-p 0.95 --stream
  genlab generate text --prompt "And" --stop "." --n 4 --json
  genlab generate image --class 7 --n 16 --sampler ddim --steps 50 --guidance 3 --seed 0 --out sevens.png
  genlab generate image --model runs/photos --n 64 --sampler dpmpp --steps 20 --out samples/
  genlab generate image --class 3 --classifier-scale 2 --out threes.png      # classifier guidance
  genlab generate image --model runs/digits --interpolate 0,1 --frames 8 --out morph.png
  genlab generate image --model runs/pcnn --class 3 --temperature 0.8 --out threes.png   # a PixelCNN, pixel by pixel
  genlab generate image --model runs/gan --n 64 --out gan.png                          # a GAN: one evaluation each
  genlab generate image --interpolate a.png,b.png --through diffused --strength 0.5 --out morph.png
  genlab generate image --prompt "a large blue triangle at the bottom right" --guidance 5 --negative-prompt "red" --n 8 --out t.png
  genlab generate image --prompt "a small red circle" --to-prompt "a large red circle" --frames 8 --out grow.png
""",
    )
    p.add_argument("modality", choices=["text", "image"], help="what to generate")
    p.add_argument("--model", help="checkpoint directory (default: the shipped model)")
    p.add_argument("--n", type=POSITIVE, default=None, help="number of samples (text 1, images 16)")
    p.add_argument("--seed", type=SEED, help="random seed: the same seed repeats the output on the same device")
    p.add_argument("--out", help="text: a file for the samples; images: X.png (a grid) or DIR/ (default samples.png)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the samples/figures and speed")
    p.add_argument("--prompt", default="", help="text: the text to continue; image: what to draw (text-to-image)")
    t = p.add_argument_group("text")
    t.add_argument("--max-tokens", type=NATURAL, default=200, dest="max_tokens", help="tokens to generate")
    t.add_argument(
        "--temperature",
        type=Num(float, 0, 100),
        default=None,
        help="softmax temperature; 0 = greedy (text: default 0.8; PixelCNN pixels and VAE latents: default 1)",
    )
    t.add_argument("--top-k", type=NATURAL, default=0, dest="top_k", help="keep the k most likely tokens (0 = all)")
    t.add_argument(
        "--top-p",
        type=Num(float, hi=1, gt=0),
        default=1.0,
        dest="top_p",
        help="keep the smallest set with this probability",
    )
    t.add_argument("--stop", action="append", metavar="TEXT", help="stop when this string appears (repeatable)")
    t.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    t.add_argument("--no-cache", action="store_true", dest="no_cache", help="recompute the context each step")
    i = p.add_argument_group("image")
    i.add_argument("--negative-prompt", dest="negative_prompt", help="text-to-image: what guidance steers away from")
    i.add_argument("--to-prompt", dest="to_prompt", help="text-to-image: interpolate from --prompt to this prompt")
    i.add_argument("--class", dest="class_", metavar="K", help="class index or name (class-conditional models)")
    i.add_argument(
        "--scale", type=POSITIVE, default=None, help="enlarge written images K× (nearest; default: to ≥48 px)"
    )
    i.add_argument("--interpolate", metavar="A,B", help="morph between two image files or two classes")
    i.add_argument(
        "--max-pixels",
        type=POSITIVE,
        default=MAX_PIXELS,
        dest="max_pixels",
        help="--interpolate: refuse larger image files",
    )
    i.add_argument("--frames", type=Num(int, 2), default=8, help="interpolation frames")
    i.add_argument("--through", choices=["diffused", "noise"], help="interpolate diffused images or slerped noise")
    i.add_argument("--strength", type=FRACTION, default=0.5, help="diffused interpolation: noise level t/T")
    add_sampler_args(p)
    p.set_defaults(func=cmd_generate)
