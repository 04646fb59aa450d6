"""Outputs never clobber inputs: a check every verb gets from :func:`genlab.cli.main` before it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from genlab.errors import GenlabError
from genlab.io import check_writable, user_path

#: the options that name something a verb writes
OUTPUT_OPTIONS = ("out", "reconstruction")


def _paths(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def _clash(given: Path, out: Path, folder: bool) -> bool:
    """Is the input ``given`` the output ``out``, or (``out`` a folder the verb writes into) inside it?"""
    try:
        if not given.exists():
            return False
        if out.exists() and given.samefile(out):
            return True
        return folder and given.resolve().is_relative_to(out.resolve())
    except OSError:
        return False


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse an output that is one of the command's inputs (``edit inpaint --mask m.png --out m.png``), or a folder
    that holds one (``segment seg/a.png --out seg/``: the masks written there could replace it)."""
    outputs = {name: getattr(args, name) for name in OUTPUT_OPTIONS if isinstance(getattr(args, name, None), str)}
    for name, text in outputs.items():
        if not text.strip():
            raise GenlabError(f"--{name} is empty: name a file or folder to write")
        check_writable(Path(text), f"--{name}")
    for name, value in vars(args).items():
        if name in OUTPUT_OPTIONS or name == "func":
            continue
        for given in filter(None, _paths(value)):
            for out_name, text in outputs.items():
                out = Path(text)
                if _clash(user_path(given), out, text.endswith(("/", "\\")) or out.is_dir()):
                    raise GenlabError(
                        f"--{out_name} {text} is or holds an input of this command ({given}); genlab never "
                        f"overwrites an input: choose another --{out_name}"
                    )
