"""``genlab demo``: every shipped model end to end, as an HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genlab.cli.common import SEED, Formatter


def cmd_demo(args: argparse.Namespace) -> int:
    from genlab.demo import run_demo

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    index = run_demo(Path(args.out), seed=args.seed, progress=None if args.quiet else progress)
    print(f"wrote {index}")
    return 0


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run every shipped model end to end; write an HTML report",
        formatter_class=Formatter,
        description="Runs each shipped default model (no training, no network) and writes OUT/index.html; a line on stderr as each section starts and ends.",
    )
    p.add_argument("--out", default="genlab-demo", help="output folder")
    p.add_argument("--seed", type=SEED, default=0, help="random seed")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_demo)
