"""Outputs never clobber inputs: a check every verb gets from :func:`genlab.cli.main` before it runs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from genlab.errors import GenlabError

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


def _check_writable(name: str, out: Path) -> None:
    """Refuse, before any work, an output whose nearest existing folder is not a folder or not writable."""
    parent = out.parent if not out.is_dir() else out
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise GenlabError(f"--{name} {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GenlabError(f"--{name} {out}: cannot write in {parent} (permission denied)")


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse an output that is one of the command's inputs (e.g. ``edit inpaint --mask m.png --out m.png``)."""
    outputs = {name: Path(v).expanduser() for name in OUTPUT_OPTIONS for v in _paths(getattr(args, name, None))}
    for name, out in outputs.items():
        if not str(getattr(args, name)).strip():
            raise GenlabError(f"--{name} is empty: name a file or folder to write")
        _check_writable(name, out)
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
