"""What every verb's parser shares: the parser class (one-line errors; every number finite and bounded), the
help formatter, numeric option types, the memory check for user-chosen sizes, and JSON output."""

from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any, NoReturn

from genlab import memory
from genlab.config import Range
from genlab.errors import GenlabError
from genlab.io import jsonable

INT_LIMIT = 2**63 - 1  # the largest int any option takes (torch's seeds and sizes are 64-bit)


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples' line breaks; shows each numeric option's range, and each option's default where it has
    one its help does not already state (an option without a default says in its help what leaving it out does)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if isinstance(action.type, Num) and action.type.range_text():
            text += f" [{action.type.range_text()}]".replace("%", "%%")
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return text
        if "default" in (action.help or ""):
            return text
        return text + " (default: %(default)s)"


class Num:
    """An argparse ``type``: a finite ``int`` or ``float`` within ``[lo, hi]`` (``gt``, ``lt``: strict bounds).

    NaN and ±inf are refused by name, so a range check can never be passed by a NaN."""

    def __init__(
        self,
        kind: type,
        lo: float | None = None,
        hi: float | None = None,
        *,
        gt: float | None = None,
        lt: float | None = None,
    ) -> None:
        self.kind = kind
        # the values allowed, as genlab.config.Range (the same rule config fields follow)
        low, high = (lo, False) if gt is None else (gt, True), (hi, False) if lt is None else (lt, True)
        self.range = Range(low[0], high[0], lo_open=low[1], hi_open=high[1])
        self.__name__ = kind.__name__

    def range_text(self) -> str:
        show = (lambda v: f"{v:,}") if self.kind is int else (lambda v: f"{v:g}")
        r = self.range
        bounds = (("> " if r.lo_open else "≥ ", r.lo), ("< " if r.hi_open else "≤ ", r.hi))
        return " and ".join(f"{sign}{show(v)}" for sign, v in bounds if v is not None)

    def __call__(self, text: str) -> int | float:
        noun = "an integer" if self.kind is int else "a finite number"
        want = f"{noun} {self.range_text()}".strip()
        try:
            value = float(text) if self.kind is float else int(text.replace("_", ""), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {want}") from None
        if self.kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {want}")
        if self.kind is int and abs(value) > INT_LIMIT:
            raise argparse.ArgumentTypeError(f"{text} is too large (at most {INT_LIMIT})")
        if value not in self.range:
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {self.range_text()}")
        return value


class NumList:
    """An argparse ``type``: comma-separated numbers, each checked by ``item`` (a :class:`Num`)."""

    def __init__(self, item: Num) -> None:
        self.item, self.__name__ = item, "list"

    def __call__(self, text: str) -> tuple[int | float, ...]:
        if not text.strip():
            raise argparse.ArgumentTypeError("expected comma-separated numbers, e.g. 0,1,3")
        return tuple(self.item(v.strip()) for v in text.split(","))


class Names:
    """An argparse ``type``: a comma-separated subset of ``choices``."""

    def __init__(self, *choices: str) -> None:
        self.choices, self.__name__ = choices, "names"

    def __call__(self, text: str) -> frozenset[str]:
        names = [v.strip() for v in text.split(",")]
        bad = [n for n in names if n not in self.choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(self.choices)} (comma-separated)")
        return frozenset(names)


#: common numeric types
SEED = Num(int, 0)  # a random seed
POSITIVE = Num(int, 1)
NATURAL = Num(int, 0)
FRACTION = Num(float, 0, 1)
HELD_OUT = Num(float, 0, lt=1)  # a held-out fraction: 0 holds nothing back


class GenlabParser(argparse.ArgumentParser):
    """Every genlab parser: usage errors are one line (exit 2), and a plain ``type=float`` or ``type=int`` option
    still refuses NaN, ±inf and ints beyond 64 bits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("type", float, Num(float))
        self.register("type", int, Num(int))

    def error(self, message: str) -> NoReturn:
        missing = re.fullmatch(r"argument (--[\w-]+)(?:/\S+)?: expected one argument", message)
        if missing:  # argparse reads `--box -5,0,9,9` as two options: say how to give such a value
            message += f" (a value that starts with '-' is written {missing.group(1)}=VALUE)"
        self.exit(2, f"genlab: error: {self.prog}: {message} (see {self.prog} --help)\n")


def check_fits(nbytes: float, what: str, hint: str) -> None:
    """Refuse a request whose estimated memory (``nbytes``) exceeds what is available, before allocating it."""
    try:
        memory.check_fits(int(nbytes), what)
    except GenlabError as e:
        raise GenlabError(f"{e}. {hint}") from None


def json_text(obj: Any) -> str:
    """``obj`` as JSON. JSON has no NaN or infinity: a figure that is infinite or undefined (the PSNR of two equal
    images) is written as null."""
    return json.dumps(jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)


#: the GenlabWarnings shown during this command (genlab.cli.main resets it): --json output carries them too
WARNINGS: list[str] = []


def json_out(obj: Any) -> None:
    """Print one JSON object on stdout (progress and messages go to stderr). An object gets the command's warnings
    as ``"warnings"`` (after any it holds); a list keeps its shape (its items may hold their own)."""
    if isinstance(obj, dict) and WARNINGS:
        held = list(obj.get("warnings", []))
        obj = obj | {"warnings": held + [w for w in WARNINGS if w not in held]}
    print(json_text(obj))
