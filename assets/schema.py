"""Typed TOML reading for characters and templates: colours, and dataclasses built
from tables with every value converted by its field's type (clear errors otherwise)."""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, fields, is_dataclass
from types import UnionType
from typing import Any, NamedTuple, Union, get_args, get_origin, get_type_hints

from farm.errors import InvalidInput

_HEX = re.compile(r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


class Color(NamedTuple):
    """An sRGB colour, 0-255 per channel; written `#rgb` or `#rrggbb` in TOML."""

    r: int
    g: int
    b: int



def parse_color(text: str) -> Color:
    """Parse `#rgb` or `#rrggbb`; ValueError otherwise."""
    if not isinstance(text, str) or not _HEX.match(text):
        raise ValueError(f"expected a colour like '#1f2a44', got {text!r}")
    digits = text[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return Color(*(int(digits[i:i + 2], 16) for i in (0, 2, 4)))



def build(cls: type, data: Any, where: str, code: str, **extra: Any) -> Any:
    """Build dataclass `cls` from a TOML table, converting each field by its type.

    `extra` fields come from the caller, never from the file.
    """
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: expected a table, got {type(data).__name__}", code=code)
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)} - set(extra)
    if unknown := sorted(set(data) - names):
        raise InvalidInput(f"{where}: unknown key(s) {', '.join(unknown)}", code=code)
    kwargs = dict(extra)
    for f in fields(cls):
        if f.name in extra:
            continue
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}", code)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise InvalidInput(f"{where}: missing {f.name}", code=code)
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str, code: str) -> Any:
    def fail(expected: str) -> InvalidInput:
        return InvalidInput(f"{where}: expected {expected}, got {value!r}", code=code)

    if get_origin(tp) in (Union, UnionType):  # an optional table: X | None
        present = [a for a in get_args(tp) if a is not type(None)]
        if len(present) == 1:
            return _convert(present[0], value, where, code)
    if tp is Color:
        try:
            return parse_color(value)
        except ValueError as e:
            raise InvalidInput(f"{where}: {e}", code=code) from None
    if is_dataclass(tp):
        return build(tp, value, where, code)
    if get_origin(tp) is tuple:
        args = get_args(tp)
        if not isinstance(value, list):
            raise fail("a list")
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(value) != len(args):
            raise fail(f"a list of {len(args)}")
        return tuple(_convert(a, v, f"{where}[{i}]", code)
                     for i, (a, v) in enumerate(zip(args, value)))
    if tp is str and isinstance(value, str):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if isinstance(value, bool):
        raise fail(tp.__name__)
    if tp is int and isinstance(value, int):
        return value
    if tp is float and isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    raise fail("a finite number" if tp is float else tp.__name__)
