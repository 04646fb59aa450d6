"""``genlab train``: a model on your data or a bundled set."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from genlab.cli.common import HELD_OUT, POSITIVE, SEED, Formatter, GenlabParser, Num, json_out
from genlab.errors import GenlabError
from genlab.io import MAX_PIXELS


def cmd_train(args: argparse.Namespace) -> int:
    from genlab.config import parse_set
    from genlab.models.base import TrainOptions
    from genlab.train.distributed import launched_rank
    from genlab.train.run import train

    overrides: dict[str, Any] = parse_set(args.set)
    for key in ("steps", "seed", "time_budget"):
        value = getattr(args, key)
        if value is not None:
            overrides.setdefault(key, value)
    if args.time_budget and args.steps is None and "steps" not in overrides and not args.resume:
        overrides["steps"] = 10**9  # the time budget alone decides when to stop
    family, kind = _family(args.modality, args.model)
    data = args.data
    for name, flag in _all_flags().items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if flag.to_data:
            if data is not None and data != value:
                raise GenlabError(f"--{name} names the run's data: give it or --data, not both")
            data = value
        else:
            overrides.setdefault(flag.key, value)
    options = TrainOptions(
        size=args.size,
        strict=args.strict,
        max_pixels=args.max_pixels,
        val_fraction=args.val_fraction,
        tokenizer=args.tokenizer,
        vocab_size=args.vocab_size,
    )
    summary = train(
        family=family,
        modality=kind,
        data=data,
        out=args.out,
        preset=args.preset,
        overrides=overrides,
        options=options,
        parts={name: getattr(args, name) for name in _all_parts()},
        resume=args.resume,
        force=args.force,
        init=args.init,
        device=args.device,
        quiet=args.quiet,
    )
    if launched_rank() != 0:  # under torchrun rank 0 reports; the others saved nothing themselves
        return 130 if summary.get("stopped") == "interrupted" else 0
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


def _family(what: str, model: str | None) -> tuple[str, str]:
    """(family, kind) for ``genlab train WHAT [--model MODEL]``: WHAT is a kind of data (text, image, segment),
    whose default family --model may replace, or a family's own name."""
    from genlab.models import DEFAULT_FAMILY, FAMILIES

    if what in DEFAULT_FAMILY:
        return model or DEFAULT_FAMILY[what], what
    if model is not None and model != what:
        raise GenlabError(
            f"--model {model}: `genlab train {what}` trains the {what} family; use `genlab train KIND --model {model}`"
        )
    if what not in FAMILIES:
        raise GenlabError(f"unknown kind {what!r}; choose one of: {', '.join(_choices())}")
    return what, what


def _choices() -> list[str]:
    """What ``genlab train`` takes: the kinds of data, then every family that is not a kind's default."""
    from genlab.models import DEFAULT_FAMILY, FAMILIES

    return list(DEFAULT_FAMILY) + [f for f in FAMILIES if f not in DEFAULT_FAMILY.values()]


def _all_flags() -> dict[str, Any]:
    """Every option a family adds to ``genlab train`` (``--method``, ``--prompts``), by option name."""
    from genlab.models import FAMILIES, family_class

    return {name: flag for f in FAMILIES for name, flag in family_class(f).flags.items()}


def _all_parts() -> dict[str, Any]:
    """Every trained part any family takes (``--autoencoder DIR``, ...), by option name."""
    from genlab.models import FAMILIES, family_class

    return {name: part for f in FAMILIES for name, part in family_class(f).parts.items()}


def family_help(name: str) -> str:
    """One family's --help section: what it is, its presets, its trained parts and every --set key."""
    from genlab.config import describe_fields
    from genlab.models import family_class
    from genlab.train.config import TrainConfig

    cls = family_class(name)
    doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
    lines = [f"{name} ({cls.modality}): {doc[0] if doc else ''}", f"  presets: {', '.join(cls.presets) or 'none'}"]
    lines += [f"  --{p.replace('_', '-')} DIR: {part.help}" for p, part in cls.parts.items()]
    lines.append("  --set model keys (tiny preset's value where it sets one):")
    lines += [f"    {line}" for line in describe_fields(cls.Config, cls.presets.get("tiny"))]
    if not cls.trains_by_counting:
        lines.append("  --set trainer keys:")
        lines += [f"    {line}" for line in describe_fields(TrainConfig, cls.presets.get("tiny"))]
    return "\n".join(lines)


def registry_help() -> str:
    """The families section of ``genlab train --help``, generated from the registry and the config dataclasses."""
    from genlab.config import describe_fields
    from genlab.models import DEFAULT_FAMILY, FAMILIES, families_for, family_class
    from genlab.train.config import TrainConfig

    lines = ["families (genlab train KIND --model FAMILY; --model F --help shows F's presets and keys alone):"]
    for kind, default in DEFAULT_FAMILY.items():
        lines.append(f"  {kind}: {', '.join(families_for(kind))} (default {default})")
    lines.append("--set model keys, by family (key: type = default):")
    for name in FAMILIES:
        keys = "; ".join(describe_fields(family_class(name).Config))
        lines += textwrap.wrap(f"{name}: {keys}", 118, initial_indent="  ", subsequent_indent="      ")
    lines.append("--set trainer keys (every family the Trainer trains):")
    lines += [f"  {line}" for line in describe_fields(TrainConfig)]
    return "\n".join(lines)


class _Help(argparse.Action):
    """-h/--help: the whole verb's help, or with --model F (or `genlab train F`) before it, F's alone."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show this help and exit")

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option=None
    ) -> None:  # noqa: ANN001
        from genlab.models import FAMILIES

        what, model = getattr(namespace, "modality", None), getattr(namespace, "model", None)
        name = model or (what if what in FAMILIES else None)
        if name in FAMILIES:
            parser.epilog = family_help(name)
        else:
            parser.epilog = (parser.epilog or "") + "\n" + registry_help()
        parser.print_help()
        parser.exit()


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on your data or a bundled set",
        formatter_class=Formatter,
        add_help=False,
        description="Train a model and save a checkpoint directory (config.json, model.safetensors, tokenizer.json, "
        "metrics.jsonl, train_state.pt). Progress shows loss, speed and ETA; Ctrl-C saves a checkpoint that "
        "--resume continues exactly.",
        epilog="""examples:
  genlab train text --data kjv --model gpt --preset tiny --out runs/kjv-gpt
  genlab train text --data my.txt --model gpt --set n_layer=4 --set n_embd=128 --set block_size=64 --steps 2000 --out runs/x
  genlab train text --data my.txt --model ngram --set order=5 --tokenizer char --out runs/my-5gram
  genlab train text --data my.txt --model lstm --time-budget 300 --out runs/lstm
  genlab train text --out runs/x --resume                # continue where an interrupted run stopped
  genlab train text --data my.txt --out runs/x --force   # start runs/x over (same family; its old files go)
  genlab train image --data digits --model diffusion --preset tiny --out runs/digits     # minutes on a CPU
  genlab train image --data ~/photos --size 64 --model diffusion --preset small --out runs/photos
  genlab train image --data digits --model classifier --set noisy=true --out runs/noisy-clf   # for guidance
  genlab train features --data shapes --out runs/feat                   # contrastive features (perceptual loss)
  genlab train autoencoder --data shapes --size 32 --perceptual runs/feat --out runs/ae
  genlab train autoencoder --data shapes --init runs/ae --set train_encoder=false --set disc_weight=0 --out runs/ae-dec
                                                             # fine-tune the decoder alone (latents unchanged)
  genlab train chat --data chatterbot --init gpt-kjv --out runs/sft     # supervised fine-tuning (docs/chat.md)
  genlab train rlhf --method ppo --policy runs/sft --reward runs/rm --prompts prompts:train --out runs/ppo
  genlab train rlhf --method dpo --policy runs/sft --data pairs.jsonl --set beta=0.1 --out runs/dpo
  genlab train clip --data shapes --out runs/clip
  genlab train text2image --data shapes --autoencoder runs/ae --text-encoder runs/clip --out runs/t2i
  genlab train segment --data shapes --preset tiny --out runs/seg        # promptable segmentation, ~1.5 hours on a CPU
  genlab train segment --data ~/masks --size 64 --set rounds=8 --out runs/my-seg   # images/ + masks/ (docs/segment.md)
  torchrun --nproc_per_node 2 -m genlab train text ...  # data parallel on several processes/GPUs

""",
    )
    p.__class__ = _TrainParser  # adds every family's --PART DIR options when `genlab train` itself is parsed
    p.add_argument("-h", "--help", action=_Help)
    p.add_argument(
        "modality",
        metavar="KIND",
        help="what to train: a kind of data (text, image, segment; --model picks the family) or a family by name "
        "(features, autoencoder, clip, text2image, attributes, ...): see the families below",
    )
    p.add_argument(
        "--data",
        help="text: a .txt file, a folder, a .jsonl file, or kjv; image: a folder, digits or shapes; segment: shapes, blobs, scenes (the data engine), a mixture such as scenes,shapes, or a folder with images/ and masks/",
    )
    p.add_argument(
        "--out",
        required=True,
        help="run directory (the checkpoint is written here): new or empty; one holding a run of the same family "
        "needs --resume (continue it) or --force (replace it); anything else is refused",
    )
    p.add_argument("--model", metavar="FAMILY", help="the family to train (default: the kind's; see below)")
    p.add_argument("--preset", default="tiny", help="size preset: tiny (CPU, minutes), small (CPU, ~hour), base (GPU)")
    p.add_argument("--steps", type=POSITIVE, help="optimizer steps (default: the preset's)")
    p.add_argument("--time-budget", type=Num(float, 0), dest="time_budget", help="stop after this many seconds")
    p.add_argument("--seed", type=SEED, help="random seed (default 0)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="set any model or trainer field (repeatable)")
    p.add_argument(
        "--tokenizer", default="char", choices=["char", "bpe"], help="text: character-level or byte-level BPE"
    )
    p.add_argument(
        "--vocab-size", type=Num(int, 1, 2**20), default=1024, dest="vocab_size", help="text: BPE vocabulary size"
    )
    p.add_argument("--size", type=POSITIVE, help="image: training size in pixels (default: the preset's)")
    p.add_argument("--strict", action="store_true", help="image: an unreadable file is an error, not skipped")
    p.add_argument(
        "--max-pixels",
        type=POSITIVE,
        default=MAX_PIXELS,
        dest="max_pixels",
        help="image, segment: a larger image in a training folder is refused (or skipped without --strict)",
    )
    p.add_argument(
        "--val-fraction",
        type=HELD_OUT,
        dest="val_fraction",
        help="held out (0 trains on everything): text its last 10%%, images a random 20%%, masks 10%%",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the run of the same family in --out with a new one (never a folder of other files)",
    )
    p.add_argument(
        "--init",
        metavar="DIR",
        help="start a new run from this checkpoint's weights and model config (fine-tuning; a path or a shipped "
        "model's name such as gpt-kjv): image families except clip/text2image, and chat (from a gpt or chat model); "
        "--set may change fields that keep the weights' shapes, e.g. autoencoder: --set train_encoder=false "
        "fine-tunes the decoder alone, so a text2image model trained on its latents keeps working",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=cmd_train)


class _TrainParser(GenlabParser):
    """The train verb's parser: the options of the families' trained parts (``--autoencoder DIR``, ...) are added
    from the registry when it parses, so ``genlab --help`` and the other verbs need not import the families."""

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201
        if not getattr(self, "parts_added", False):
            self.parts_added = True
            group = self.add_argument_group("trained parts a family is built from")
            for name, part in _all_parts().items():
                group.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="DIR", help=part.help)
            group = self.add_argument_group("options a family adds")
            for name, flag in _all_flags().items():
                group.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar=flag.metavar, help=flag.help)
        return super().parse_known_args(args, namespace)
