"""Config dataclasses: presets, ``--set key=value`` overrides, and JSON round trips.

A family's model config and the trainer's config are plain dataclasses. A preset is a dict of
field overrides that may touch either. ``--set`` values are parsed by the field's declared type.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from genlab.errors import GenlabError


def parse_set(items: Iterable[str] | None) -> dict[str, str]:
    """Split repeated ``key=value`` strings into a dict (later keys win)."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise GenlabError(f"--set {item!r}: expected key=value, e.g. --set n_layer=4")
        out[key] = value.strip()
    return out


def _parse_value(name: str, text: str, annotation: Any) -> Any:
    """Parse ``text`` as a value of ``annotation`` (int, float, bool, str, Literal, X | None)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if text.lower() in ("none", "null", ""):
            return None
        return _parse_value(name, text, args[0])
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        if text not in choices:
            raise GenlabError(f"--set {name}={text}: must be one of {', '.join(map(str, choices))}")
        return text
    try:
        if annotation is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if annotation is int:
            if "e" not in text.lower():
                return int(text)
            number = float(text)  # 1e6
            if not math.isfinite(number) or not number.is_integer():
                raise ValueError
            return int(number)
        if annotation is float:
            number = float(text)
            if not math.isfinite(number):
                raise GenlabError(f"--set {name}={text}: must be a finite number")
            return number
        if annotation is str:
            return text
    except ValueError:
        raise GenlabError(f"--set {name}={text}: not a valid {annotation.__name__}") from None
    raise GenlabError(f"--set {name}: this field cannot be set from the command line")


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(annotation)))
    names = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string", type(None): "null"}
    if annotation in names:
        return names[annotation]
    return f"a {getattr(origin or annotation, '__name__', str(annotation))}"


def _check_value(annotation: Any, value: Any) -> tuple[bool, Any]:
    """(ok, value as the field holds it) for a JSON ``value`` of a field annotated ``annotation``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        for arg in typing.get_args(annotation):
            ok, converted = _check_value(arg, value)
            if ok:
                return True, converted
        return False, value
    if origin is typing.Literal:
        return value in typing.get_args(annotation) and not isinstance(value, bool), value
    if annotation is type(None):
        return value is None, value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:  # JSON has one number type: 4.0 is 4, but 2.5, true and "4" are not integers
        if isinstance(value, int) and not isinstance(value, bool):
            return True, value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return True, int(value)
        return False, value
    if annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return ok, float(value) if ok else value
    if annotation is str:
        return isinstance(value, str), value
    container = origin or annotation
    if container in (tuple, list):  # tuple[int, ...] or list[int]: every item of one type (JSON gives a list)
        if not isinstance(value, list | tuple):
            return False, value
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        items = [_check_value(args[0], v) if args else (True, v) for v in value]
        return all(ok for ok, _ in items), container(v for _, v in items)
    if container is dict:
        return isinstance(value, dict), value
    if isinstance(container, type):
        return isinstance(value, container), value
    return True, value


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a numeric config field may take: ``lo``..``hi`` (None: unbounded), ends closed unless open."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, v: float) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)

    def __str__(self) -> str:
        def num(v: float) -> str:
            return "2^62" if v == 2**62 else str(v) if isinstance(v, int) else f"{v:g}"

        hi = self.hi
        if self.lo is not None and hi is not None:
            return f"in {'(' if self.lo_open else '['}{num(self.lo)}, {num(hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'greater than' if self.lo_open else 'at least'} {num(self.lo)}"
        if hi is not None:
            return f"{'less than' if self.hi_open else 'at most'} {num(hi)}"
        return "a finite number"


# Shared ranges. The ceilings are far above every shipped preset and model (GPU presets included) and stop a typo
# from allocating absurd memory: n_embd = 100000 would be ~2 TB of weights before the memory check even runs.
FINITE = Range()
NONNEGATIVE = Range(0)
POSITIVE = Range(0, lo_open=True)
PROBABILITY = Range(0, 1, hi_open=True)  # dropout-like: 1 would drop everything
FRACTION = Range(0, 1)
COUNT = Range(0, 2**62)  # steps, seeds: any int64
WIDTH = Range(1, 16384)  # embedding / channel widths (GPT-3 175B: 12288)
DEPTH = Range(1, 256)  # layers, blocks, heads
CONTEXT = Range(1, 65536)  # tokens in a window
IMAGE_SIZE = Range(1, 4096)  # pixels per side
IMAGE_CHANNELS = Range(1, 64)  # grey, RGB, RGBA; room to spare
MULTIPLIER = Range(1, 64)  # an item of channel_mult
VOCAB = Range(0, 1_000_000)  # 0: not yet set from the tokenizer
CLASSES = Range(0, 1_000_000)
TIMESTEPS = Range(2, 100_000)


def check_ranges(cfg: Any, prefix: str, ranges: Mapping[str, Range]) -> None:
    """Each named field of ``cfg`` is a number (finite, if a float) in its range, or a :class:`GenlabError`."""
    for name, allowed in ranges.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise GenlabError(f"{prefix}: {name}={value!r} must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise GenlabError(f"{prefix}: {name}={value} must be a finite number")
        if value not in allowed:
            raise GenlabError(f"{prefix}: {name}={value} must be {allowed}")


def check_int_list(values: Iterable[int], name: str, allowed: Range, *, most: int = 8) -> None:
    """Every item of a comma-separated setting (channel_mult, ...) in ``allowed``; at most ``most`` items."""
    values = list(values)
    if len(values) > most:
        raise GenlabError(f"{name}: at most {most} values, got {len(values)}")
    for v in values:
        if v not in allowed:
            raise GenlabError(f"{name}: each value must be {allowed}, got {v}")


def field_names(cfg: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(cfg)]


def apply_overrides(configs: list[Any], overrides: Mapping[str, Any], *, source: str = "--set") -> None:
    """Set fields on whichever of ``configs`` declares them; string values are parsed by type.

    An unknown key is a :class:`GenlabError` that lists every valid key.
    """
    for key, value in overrides.items():
        owner = next((c for c in configs if key in field_names(c)), None)
        if owner is None:
            valid = sorted({n for c in configs for n in field_names(c)})
            raise GenlabError(f"{source}: unknown key {key!r}; valid keys: {', '.join(valid)}")
        if isinstance(value, str):
            hints = typing.get_type_hints(type(owner))
            value = _parse_value(key, value, hints[key])
        setattr(owner, key, value)
    for cfg in configs:
        check = getattr(cfg, "validate", None)
        if check is not None:
            check()


def from_dict(cls: type, data: Any, *, source: str = "config") -> Any:
    """Build ``cls`` from a JSON dict, checking each value against its field's type, then ``validate()``.

    Unknown keys are ignored so older checkpoints still load; a missing key keeps the field's default. A value of
    the wrong type, or one the config's ``validate()`` refuses, is a :class:`GenlabError` that starts with
    ``source`` (e.g. the path of the config.json it came from).
    """
    if not isinstance(data, Mapping):
        raise GenlabError(f"{source}: expected a JSON object of settings, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data or not f.init:
            continue
        value = data[f.name]
        ok, converted = _check_value(hints[f.name], value)
        if not ok:
            shown = json.dumps(value) if _jsonable(value) else repr(value)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            raise GenlabError(f"{source}: {f.name}={shown} is not {_type_name(hints[f.name])}")
        values[f.name] = converted
    cfg = cls(**values)
    check = getattr(cfg, "validate", None)
    if check is not None:
        try:
            check()
        except GenlabError as e:
            raise GenlabError(f"{source}: {e}") from None
    return cfg


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        return False
    return True


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def describe_fields(cls: type, preset: Mapping[str, Any] | None = None) -> list[str]:
    """One ``key: type = default`` line per field of dataclass ``cls`` (the preset's value where it sets one)."""
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        if preset and f.name in preset:
            default = preset[f.name]
        kind = getattr(hints[f.name], "__name__", str(hints[f.name]))
        lines.append(f"{f.name}: {kind} = {default!r}")
    return lines
