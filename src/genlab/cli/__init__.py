"""The ``genlab`` command: parse, call the library, report. One module per verb.

Exit status: 0 done; 2 bad usage or bad input (one line, no traceback); 1 an internal error;
130 interrupted (training saves a checkpoint first).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from genlab.cli.classify import add_classify
from genlab.cli.common import Formatter
from genlab.cli.demo import add_demo
from genlab.cli.edit import add_edit
from genlab.cli.eval import add_eval
from genlab.cli.export import add_export
from genlab.cli.generate import add_generate
from genlab.cli.segment import add_segment
from genlab.cli.train import add_train
from genlab.errors import GenlabError, GenlabWarning
from genlab.version import __version__

EXAMPLES = """\
examples:
  genlab demo                                              # every shipped model, end to end -> genlab-demo/index.html
  genlab generate text --prompt "In the beginning" --max-tokens 200 --seed 1
  genlab train text --data my.txt --model gpt --preset tiny --out runs/my-gpt
  genlab train text --data kjv --model ngram --set order=5 --out runs/5gram
  genlab eval text runs/my-gpt --data held_out.txt --json
  genlab generate image --class 7 --n 16 --guidance 3 --seed 0 --out sevens.png
  genlab train image --data digits --model diffusion --preset tiny --out runs/digits
  genlab eval image runs/digits --data digits --fid --json
  genlab generate image --prompt "a large blue triangle at the bottom right" --guidance 5 --out t.png
  genlab classify image t.png --labels "a circle,a triangle,a star"          # CLIP zero-shot
  genlab edit inpaint --image photo.jpg --mask hole.png --out filled.png   # also texture, retarget, denoise, ...
  genlab segment photo.png --point 120,80 --out mask.png     # Segment-Anything-style: clicks, --box, --all

Every verb has its own --help. Docs: docs/index.md in the source tree.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genlab",
        formatter_class=Formatter,
        epilog=EXAMPLES,
        description="genlab: train, sample, edit and evaluate generative models on your own machine, offline.",
    )
    parser.add_argument("--version", action="version", version=f"genlab {__version__}")
    sub = parser.add_subparsers(title="verbs", metavar="VERB", required=True)
    for add in (add_train, add_generate, add_eval, add_edit, add_classify, add_segment, add_export, add_demo):
        add(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"genlab: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    # Idle OpenMP workers spin only briefly before sleeping. With the default long spin, any other busy process on
    # a 2-core laptop makes torch's workers fight it for the cores: training ran 5x slower here; with this, 3x
    # less slowdown, for 3% when the machine is idle (docs/design.md). Set before torch starts its thread pool.
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "10000")
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # libraries' own deprecation chatter is not for users
            warnings.simplefilter("always", GenlabWarning)
            warnings.showwarning = _show_warning
            return args.func(args)
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `genlab generate ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
