"""Config dataclasses: presets, ``--set key=value`` overrides, and JSON round trips.

A family's model config and the trainer's config are plain dataclasses. A preset is a dict of
field overrides that may touch either. ``--set`` values are parsed by the field's declared type.
"""

from __future__ import annotations

import dataclasses
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
            return int(float(text)) if "e" in text.lower() else int(text)
        if annotation is float:
            return float(text)
        if annotation is str:
            return text
    except ValueError:
        raise GenlabError(f"--set {name}={text}: not a valid {annotation.__name__}") from None
    raise GenlabError(f"--set {name}: this field cannot be set from the command line")


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


def from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Build ``cls`` from a JSON dict, ignoring unknown keys so older checkpoints still load."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


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
