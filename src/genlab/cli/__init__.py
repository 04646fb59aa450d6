"""The ``genlab`` command: parse, call the library, report. One module per verb.

Exit status: 0 done; 2 bad usage or bad input (one line, no traceback); 1 an internal error (a traceback and a
request for a bug report); 130 interrupted (training saves a checkpoint first).

The error boundary is :func:`main`: a :class:`GenlabError`, an I/O error on a file the user named, or running out of
memory on a size the user chose is one line and exit 2; anything else is a bug in genlab.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings

from genlab.cli import common
from genlab.cli.chat import add_chat
from genlab.cli.classify import add_classify
from genlab.cli.common import Formatter, GenlabParser
from genlab.cli.compare import add_compare
from genlab.cli.demo import add_demo
from genlab.cli.edit import add_edit
from genlab.cli.eval import add_eval
from genlab.cli.export import add_export
from genlab.cli.generate import add_generate
from genlab.cli.label import add_label
from genlab.cli.outputs import check_outputs
from genlab.cli.segment import add_segment
from genlab.cli.serve import add_serve
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
  genlab segment scene.png --point 32,36 --out mask.png      # Segment-Anything-style: clicks, --box, --all
  genlab chat --model runs/sft --system "Answer briefly."    # talk to a chat model; --json for one turn
  genlab label pairs --model runs/sft --judge sentiment --n 4 --out pairs.jsonl  # preference pairs by a judge
  genlab eval chat runs/sft --judge sentiment --reference runs/sft-100 --json   # reward, KL, diversity
  genlab compare chat runs/ppo runs/dpo --reference runs/sft --reward runs/rm --held-out-reward runs/rm2 --out report

Every verb has its own --help. Docs: docs/index.md in the source tree.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = GenlabParser(
        prog="genlab",
        formatter_class=Formatter,
        epilog=EXAMPLES,
        description="genlab: train, sample, edit and evaluate generative models on your own machine, offline.",
    )
    parser.add_argument("--version", action="version", version=f"genlab {__version__}")
    sub = parser.add_subparsers(title="verbs", metavar="VERB", required=True)
    for add in (
        add_train,
        add_generate,
        add_eval,
        add_label,
        add_compare,
        add_edit,
        add_classify,
        add_segment,
        add_export,
        add_chat,
        add_demo,
        add_serve,
    ):
        add(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    text = " ".join(str(message).split())
    common.WARNINGS.append(text)  # --json output carries it too
    print(f"genlab: warning: {text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    # Idle OpenMP workers spin only briefly before sleeping. With the default long spin, any other busy process on
    # a 2-core laptop makes torch's workers fight it for the cores: training ran 5x slower here; with this, 3x
    # less slowdown, for 3% when the machine is idle (docs/design.md). Set before torch starts its thread pool.
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "10000")
    args = build_parser().parse_args(argv)
    common.WARNINGS.clear()
    try:
        check_outputs(args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # libraries' own deprecation chatter is not for users
            warnings.simplefilter("always", GenlabWarning)
            warnings.showwarning = _show_warning
            return args.func(args)
    except GenlabError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print("genlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `genlab generate ... | head`
        return 0
    except OSError as e:  # a file the user named: unreadable, unwritable, a folder, a full disk, ...
        where = f"{e.filename}: " if e.filename else ""
        return _fail(f"{where}{e.strerror or e}")
    except MemoryError:
        return _fail(OUT_OF_MEMORY)
    except RuntimeError as e:
        if _is_out_of_memory(e):
            return _fail(OUT_OF_MEMORY)
        return _internal_error()
    except Exception:  # noqa: BLE001 - the boundary: anything else is a bug, shown in full
        return _internal_error()


OUT_OF_MEMORY = (
    "out of memory: the request needs more memory than this machine has; "
    "ask for less (a smaller --n, --size, --max-tokens, --scale or model)"
)


def _fail(message: str) -> int:
    print(f"genlab: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _is_out_of_memory(e: RuntimeError) -> bool:
    """torch's allocation failures: ``torch.OutOfMemoryError`` on a GPU, a RuntimeError from the CPU allocator."""
    text = str(e)
    return type(e).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "not enough memory" in text


def _internal_error() -> int:
    traceback.print_exc()
    print(
        f"genlab {__version__}: internal error. This is a bug in genlab, not in what you asked: please report it "
        "with the command you ran and the lines above.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
