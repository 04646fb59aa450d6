"""``genlab export``: the inference part of a checkpoint, optionally in half precision."""

from __future__ import annotations

import argparse

from genlab.cli.common import Formatter


def cmd_export(args: argparse.Namespace) -> int:
    from genlab.checkpoint import export_checkpoint

    out = export_checkpoint(args.model_dir, args.out, dtype=args.dtype, decoder=args.decoder, force=args.force)
    print(f"wrote {out}")
    return 0


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="copy a checkpoint for inference (optionally in half precision)",
        formatter_class=Formatter,
        description="Writes config.json, model.safetensors (the EMA weights where the run kept them) and the "
        "family's extras and manifest.json to --out, without training state; --dtype float16 halves the size. "
        "--out must be new or empty, or (with --force, replaced as a whole) a checkpoint of the same family.",
        epilog="examples:\n  genlab export runs/gpt-kjv --out my-model --dtype float16\n"
        "  genlab export runs/t2i --decoder runs/ae-dec --out my-t2i   # a decoder fine-tuned with a frozen encoder\n",
    )
    p.add_argument("model_dir", metavar="DIR", help="checkpoint directory")
    p.add_argument("--out", required=True, help="destination directory: new or empty (or see --force)")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the checkpoint or run of the same family in --out as a whole (never a folder of other files)",
    )
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="weight precision")
    p.add_argument(
        "--decoder",
        metavar="DIR",
        help="text2image: use this autoencoder's decoder (fine-tuned from the model's own autoencoder with "
        "genlab train autoencoder --init ... --set train_encoder=false; its encoder must be the model's)",
    )
    p.set_defaults(func=cmd_export)
