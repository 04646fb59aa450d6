"""``genlab train``: a model on your data or a bundled set."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from genlab.cli.common import Formatter, json_out
from genlab.errors import GenlabError


def cmd_train(args: argparse.Namespace) -> int:
    from genlab.config import parse_set

    overrides: dict[str, Any] = parse_set(args.set)
    for key in ("steps", "seed", "time_budget"):
        value = getattr(args, key)
        if value is not None:
            overrides.setdefault(key, value)
    if args.time_budget and args.steps is None and "steps" not in overrides and not args.resume:
        overrides["steps"] = 10**9  # the time budget alone decides when to stop
    common = dict(
        data=args.data,
        out=args.out,
        preset=args.preset,
        overrides=overrides,
        resume=args.resume,
        device=args.device,
        quiet=args.quiet,
    )
    if args.init and args.modality in ("text", "segment"):
        raise GenlabError(f"--init: fine-tuning from a checkpoint is for the image families, not {args.modality}")
    if args.modality == "text":
        from genlab.train.text import train_text

        summary = train_text(
            family=args.model or "gpt",
            tokenizer=args.tokenizer,
            vocab_size=args.vocab_size,
            val_fraction=args.val_fraction or 0.1,
            **common,
        )
    elif args.modality == "segment":
        from genlab.train.segment import train_segment

        if args.size is not None:
            overrides.setdefault("image_size", args.size)
        summary = train_segment(
            family=args.model or "sam", strict=args.strict, val_fraction=args.val_fraction or 0.1, **common
        )
    else:
        from genlab.train.image import train_image

        parts = {"autoencoder": args.autoencoder, "text_encoder": args.text_encoder, "perceptual": args.perceptual}
        summary = train_image(
            modality=args.modality,
            family=args.model,
            size=args.size,
            parts=parts,
            strict=args.strict,
            val_fraction=args.val_fraction or 0.2,
            init=args.init,
            **common,
        )
    if summary.get("stopped") == "interrupted":
        print(
            f"genlab: interrupted at step {summary['step']}; the checkpoint in {args.out} is saved. "
            "Continue with the same command and --resume.",
            file=sys.stderr,
        )
        return 130
    if args.json:
        json_out(summary)
    else:
        held = summary.get("held_out") or {}
        figures = ", ".join(f"{k} {v:.4f}" for k, v in held.items() if isinstance(v, float))
        print(
            f"saved {summary.get('family', 'model')} to {args.out} (step {summary.get('step', 0)})"
            + (f"; held out: {figures}" if figures else "")
        )
    return 0


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on your data or a bundled set",
        formatter_class=Formatter,
        description="Train a model and save a checkpoint directory (config.json, model.safetensors, tokenizer.json, "
        "metrics.jsonl, train_state.pt). Progress shows loss, speed and ETA; Ctrl-C saves a checkpoint that "
        "--resume continues exactly.",
        epilog="""examples:
  genlab train text --data kjv --model gpt --preset tiny --out runs/kjv-gpt
  genlab train text --data my.txt --model gpt --set n_layer=4 --set n_embd=128 --set block_size=64 --steps 2000 --out runs/x
  genlab train text --data my.txt --model ngram --set order=5 --tokenizer char --out runs/my-5gram
  genlab train text --data my.txt --model lstm --time-budget 300 --out runs/lstm
  genlab train text --out runs/x --resume                # continue where an interrupted run stopped
  genlab train image --data digits --model diffusion --preset tiny --out runs/digits     # minutes on a CPU
  genlab train image --data ~/photos --size 64 --model diffusion --preset small --out runs/photos
  genlab train image --data digits --model classifier --set noisy=true --out runs/noisy-clf   # for guidance
  genlab train features --data shapes --out runs/feat                   # contrastive features (perceptual loss)
  genlab train autoencoder --data shapes --size 32 --perceptual runs/feat --out runs/ae
  genlab train autoencoder --data shapes --init runs/ae --set train_encoder=false --set disc_weight=0 --out runs/ae-dec
                                                             # fine-tune the decoder alone (latents unchanged)
  genlab train clip --data shapes --out runs/clip
  genlab train text2image --data shapes --autoencoder runs/ae --text-encoder runs/clip --out runs/t2i
  genlab train segment --data shapes --preset tiny --out runs/seg        # promptable segmentation, ~1.5 hours on a CPU
  genlab train segment --data ~/masks --size 64 --set rounds=8 --out runs/my-seg   # images/ + masks/ (docs/segment.md)
  torchrun --nproc_per_node 2 -m genlab train text ...  # data parallel on several processes/GPUs

families: text gpt (decoder-only transformer), lstm (recurrent), ngram (counts with Kneser-Ney or Witten-Bell
smoothing); image diffusion (DDPM UNet; class-conditional when the data has labels), classifier (p(y|x), clean or
noisy images); segment sam (Segment-Anything-style: image encoder, prompt encoder, two-way mask decoder).
--set takes any model field (gpt: block_size n_layer n_head n_embd dropout bias; lstm: block_size n_layer n_embd
n_hidden dropout; ngram: order smoothing discount; diffusion: image_size base_channels channel_mult num_res_blocks
attn_resolutions dropout cond_drop timesteps schedule prediction num_classes; classifier: base_channels channel_mult
num_res_blocks dropout noisy; sam: image_size stage_channels encoder_dim encoder_depth prompt_dim decoder_depth mask_upscale
rounds masks_per_image box_prob max_objects part_prob) or trainer field (steps batch_size accumulate lr min_lr warmup weight_decay beta1 beta2
grad_clip ema eval_every eval_batches sample_every log_every ckpt_every time_budget precision compile seed).
""",
    )
    p.add_argument(
        "modality",
        choices=["text", "image", "features", "autoencoder", "clip", "attributes", "text2image", "segment"],
        help="text: language models; image: diffusion (or --model classifier); the text-to-image pipeline: features "
        "(contrastive, for the perceptual loss), autoencoder, clip, text2image; attributes (a judge for shapes); segment: promptable segmentation (Segment-Anything style)",
    )
    p.add_argument(
        "--data",
        help="text: a .txt file, a folder, a .jsonl file, or kjv; image: a folder, digits or shapes; segment: shapes, blobs, or a folder with images/ and masks/",
    )
    p.add_argument("--out", required=True, help="run directory (the checkpoint is written here)")
    p.add_argument(
        "--model", help="family: text gpt (default), lstm, ngram; image diffusion (default), classifier; segment sam"
    )
    p.add_argument("--preset", default="tiny", help="size preset: tiny (CPU, minutes), small (CPU, ~hour), base (GPU)")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the preset's)")
    p.add_argument("--time-budget", type=float, dest="time_budget", help="stop after this many seconds")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="set any model or trainer field (repeatable)")
    p.add_argument(
        "--tokenizer", default="char", choices=["char", "bpe"], help="text: character-level or byte-level BPE"
    )
    p.add_argument("--vocab-size", type=int, default=1024, dest="vocab_size", help="text: BPE vocabulary size")
    p.add_argument("--size", type=int, help="image: training size in pixels (default: the preset's)")
    p.add_argument("--strict", action="store_true", help="image: an unreadable file is an error, not skipped")
    p.add_argument("--autoencoder", metavar="DIR", help="text2image: the trained autoencoder whose latents it models")
    p.add_argument("--text-encoder", metavar="DIR", dest="text_encoder", help="text2image: the trained CLIP")
    p.add_argument(
        "--perceptual",
        metavar="DIR",
        help="autoencoder: feature network for the perceptual loss (default: the shipped features-shapes)",
    )
    p.add_argument(
        "--val-fraction", type=float, dest="val_fraction", help="held out: text its last 10%%, images a random 20%%"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument(
        "--init",
        metavar="DIR",
        help="image families: start a new run from this checkpoint's weights and model config (fine-tuning); "
        "--set may change fields that keep the weights' shapes, e.g. autoencoder: --set train_encoder=false "
        "fine-tunes the decoder alone, so a text2image model trained on its latents keeps working",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=cmd_train)
