"""``genlab demo``: every shipped model end to end, as an HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from genlab.cli.common import SEED, Formatter


def cmd_demo(args: argparse.Namespace) -> int:
    from genlab.demo import run_demo

    index = run_demo(Path(args.out), seed=args.seed)
    print(f"wrote {index}")
    return 0


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run every shipped model end to end; write an HTML report",
        formatter_class=Formatter,
        description="Runs each shipped default model (no training, no network) and writes OUT/index.html.",
    )
    p.add_argument("--out", default="genlab-demo", help="output folder")
    p.add_argument("--seed", type=SEED, default=0, help="random seed")
    p.set_defaults(func=cmd_demo)
