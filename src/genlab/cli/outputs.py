"""Outputs never clobber inputs: a check every verb gets from :func:`genlab.cli.main` before it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from genlab.errors import GenlabError
from genlab.io import check_writable

#: the options that name something a verb writes
OUTPUT_OPTIONS = ("out", "reconstruction")


def _paths(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse an output that is one of the command's inputs (e.g. ``edit inpaint --mask m.png --out m.png``)."""
    outputs = {name: Path(v).expanduser() for name in OUTPUT_OPTIONS for v in _paths(getattr(args, name, None))}
    for name, out in outputs.items():
        if not str(getattr(args, name)).strip():
            raise GenlabError(f"--{name} is empty: name a file or folder to write")
        check_writable(out, f"--{name}")
    if not outputs:
        return
    for name, value in vars(args).items():
        if name in OUTPUT_OPTIONS or name == "func":
            continue
        for text in filter(None, _paths(value)):
            for out_name, out in outputs.items():
                if _same(Path(text).expanduser(), out):
                    raise GenlabError(
                        f"--{out_name} {out} is also an input of this command ({text}); genlab never overwrites an "
                        f"input: choose another --{out_name}"
                    )
