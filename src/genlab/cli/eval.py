"""``genlab eval``: held-out figures of a model."""

from __future__ import annotations

import argparse
from typing import Any

from genlab.cli.common import Formatter, json_out
from genlab.cli.generate import add_sampler_args, sampler_controls


def cmd_eval(args: argparse.Namespace) -> int:
    figures = _eval_text(args) if args.modality == "text" else _eval_image(args)
    if args.json:
        json_out(figures)
    else:
        for key, value in figures.items():
            print(f"{key:>16}  {value:.4f}" if isinstance(value, float) else f"{key:>16}  {value}")
    return 0


def _eval_text(args: argparse.Namespace) -> dict[str, Any]:
    import genlab
    from genlab.data.text import load_text, split_text
    from genlab.eval.text import evaluate_text
    from genlab.runtime import best_device

    model = genlab.load(args.model_dir, task="text", device=best_device(args.device))
    text = load_text(args.data)
    if (args.split or "all") != "all":
        train_part, val_part = split_text(text, args.val_fraction or 0.1)
        text = val_part if args.split == "val" else train_part
    return evaluate_text(model, text)


def _eval_image(args: argparse.Namespace) -> dict[str, Any]:
    import genlab
    from genlab.assets import default_model
    from genlab.eval.fid import inception_weights
    from genlab.eval.image import evaluate_image_model, reference_images
    from genlab.runtime import best_device

    device = best_device(args.device)
    model = genlab.load(args.model_dir, task="image", device=device)
    reference = reference_images(model, args.data, args.split or "val", args.val_fraction)
    features = set((args.features or "classifier,inception").split(","))
    classifier = None
    if args.fid and "classifier" in features and (args.classifier or args.data == "digits"):
        classifier = genlab.load(args.classifier or default_model("classifier"), task="classifier", device=device)
    inception = args.fid and "inception" in features and (args.features is not None or inception_weights() is not None)
    controls = sampler_controls(args, model, device)
    return evaluate_image_model(
        model,
        reference,
        fid_samples=args.samples if args.fid else 0,
        judge=classifier,
        inception=inception,
        seed=args.seed,
        progress=not args.json,
        **controls,
    )


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure a model on held-out data",
        formatter_class=Formatter,
        description="Text: held-out likelihood — nats per token, perplexity and bits per character "
        "(tokenizer-independent, so every family compares on the same footing), each token scored with all the "
        "context the model uses. Images: the held-out denoising loss, and with --fid: FID and KID of generated "
        "samples against held-out real images with Inception-v3 features (genlab[fid]) and with a genlab "
        "classifier's features, plus the class accuracy of class-conditional samples.",
        epilog="""examples:
  genlab eval text runs/my-gpt --data held_out.txt --json
  genlab eval text runs/5gram --data kjv --split val       # the last 10% of the bundled corpus
  genlab eval image runs/digits --data digits --fid --json  # held-out 20% of digits as the reference
  genlab eval image runs/digits --data digits --fid --sampler dpmpp --steps 20 --guidance 1 --samples 1000
""",
    )
    p.add_argument("modality", choices=["text", "image"], help="what the model generates")
    p.add_argument("model_dir", metavar="DIR", help="checkpoint directory")
    p.add_argument(
        "--data", required=True, help="text: a file, folder, .jsonl or kjv; images: a folder, digits, shapes"
    )
    p.add_argument("--split", choices=["all", "train", "val"], help="part of --data (text: all; images: val)")
    p.add_argument("--val-fraction", type=float, dest="val_fraction", help="held-out part for --split")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    i = p.add_argument_group("image")
    i.add_argument("--fid", action="store_true", help="sample and compute FID, KID and class accuracy")
    i.add_argument("--samples", type=int, default=500, help="images to generate for --fid")
    i.add_argument("--features", help="classifier, inception or both (default: whichever is available)")
    i.add_argument("--seed", type=int, default=0, help="sampling seed")
    add_sampler_args(p)
    p.set_defaults(func=cmd_eval)
