"""Find, load and validate characters and templates shipped in this package.

A character is a folder holding `character.toml` and the SVG it names; a template is
one `.toml` file. Strings are names looked up in the package; `os.PathLike` values are
paths (tests and tools only: a name from a request can never reach the file system).
Every problem is an `InvalidInput` with a machine-readable code.
"""
from __future__ import annotations

import os
import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, NoReturn

from assets.character import (EYE_STATES, MOUTH_SHAPES, NEUTRAL, Character, Expression, Gestures,
                              Idle)
from assets.schema import Color, build, parse_color
from assets.template import ASPECTS, MAX_BULLETS, Captions, Template
from farm.errors import InvalidInput

# Re-exported: callers take the schema from here, beside the functions that load it.
__all__ = ["ASPECTS", "CHARACTERS_DIR", "Captions", "Character", "Color", "EYE_STATES", "FONTS_DIR",
           "Gestures", "Idle", "MAX_BULLETS", "MOUTH_SHAPES", "NEUTRAL", "SVG_NS", "TEMPLATES_DIR", "Template",
           "list_characters", "list_templates", "load_character", "load_template", "parse_color"]

PACKAGE_DIR = Path(__file__).resolve().parent
CHARACTERS_DIR = PACKAGE_DIR / "characters"
TEMPLATES_DIR = PACKAGE_DIR / "templates"
FONTS_DIR = PACKAGE_DIR / "fonts"
SVG_NS = "http://www.w3.org/2000/svg"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


# --- lookup ------------------------------------------------------------------------

def list_characters() -> list[str]:
    """Names of the characters shipped in the package."""
    return sorted(p.parent.name for p in CHARACTERS_DIR.glob("*/character.toml"))


def list_templates() -> list[str]:
    """Names of the templates shipped in the package."""
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.toml"))


def load_character(name: str | os.PathLike[str]) -> Character:
    """Load a character by package name, or from a folder path; validates its SVG."""
    if isinstance(name, os.PathLike):
        folder = Path(name)
    else:
        _check_name(name, list_characters(), "character", "unknown_character")
        folder = CHARACTERS_DIR / name
    toml_path = folder / "character.toml"
    if not toml_path.is_file():
        raise InvalidInput(f"no character.toml in {folder}", code="unknown_character")
    where = f"character {toml_path}"
    data = _read_toml(toml_path, "invalid_character")
    expressions = _read_expressions(data.pop("expressions", {}), f"{where}: expressions")
    character = build(Character, data, where, "invalid_character", folder=folder,
                       expressions=expressions)
    _check_character(character, where)
    return character


def load_template(name: str | os.PathLike[str]) -> Template:
    """Load a template by package name, or from a `.toml` file path."""
    if isinstance(name, os.PathLike):
        path = Path(name)
        if not path.is_file():
            raise InvalidInput(f"no template file {path}", code="unknown_template")
    else:
        _check_name(name, list_templates(), "template", "unknown_template")
        path = TEMPLATES_DIR / f"{name}.toml"
    data = _read_toml(path, "invalid_template")
    template = build(Template, data, f"template {path}", "invalid_template")
    _check_template(template, f"template {path}")
    return template


# --- validation ----------------------------------------------------------------------

def _check_name(name: object, known: list[str], kind: str, code: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or name not in known:
        raise InvalidInput(f"unknown {kind} {name!r}; choose one of {', '.join(known)}",
                           code=code)


def _read_toml(path: Path, code: str) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise InvalidInput(f"{path}: not valid TOML ({e})", code=code) from None


def _read_expressions(raw: Any, where: str) -> tuple[Expression, ...]:
    """[expressions.<name>] tables of key = "group" strings, in file order."""
    def fail(msg: str) -> NoReturn:
        raise InvalidInput(f"{where}: {msg}", code="invalid_character")

    if not isinstance(raw, dict):
        fail("expected tables like [expressions.happy]")
    out = []
    for name, table in raw.items():
        if not _NAME.match(name):
            fail(f"bad expression name {name!r} (lowercase letters, digits, _ and -)")
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            fail(f"{name}: expected key = \"svg group\" pairs")
        out.append(Expression(name, tuple(table.items())))
    return tuple(out)


def _check_character(c: Character, where: str) -> None:
    def fail(msg: str) -> NoReturn:
        raise InvalidInput(f"{where}: {msg}", code="invalid_character")

    order = c.layers.order
    if "eyes" not in order or "mouth" not in order:
        fail("layers.order must contain the 'eyes' and 'mouth' slots")
    if len(set(order)) != len(order):
        fail("layers.order names a slot twice")
    if stray := [s for s in c.layers.head if s not in order]:
        fail(f"layers.head names slots not in layers.order: {', '.join(stray)}")
    if c.canvas.width <= 0 or c.canvas.height <= 0:
        fail("canvas width and height must be positive")
    idle = c.idle
    if min(idle.breath_period_s, idle.head_period_s, idle.blink_duration_s) <= 0:
        fail("idle periods and the blink duration must be positive")
    lo, hi = idle.blink_interval_s
    if not idle.blink_duration_s < lo <= hi or idle.first_blink_s[0] > idle.first_blink_s[1]:
        fail("idle blink ranges must be [low, high] and longer than a blink")
    g = c.gestures
    if min(g.brow_lift, g.nod, g.saccade_amplitude[0], g.saccade_amplitude[1]) < 0 \
            or max(g.brow_lift, g.nod, *g.saccade_amplitude) > 0.05 or g.nod_s <= 0:
        fail("gestures: lifts, nods and saccades must be in [0, 0.05] of the height, "
             "nod_s positive")
    if not (0 < g.emphasis_share <= 1 and g.emphasis_gap_s >= 0
            and 0 < g.saccade_interval_s[0] <= g.saccade_interval_s[1]):
        fail("gestures: emphasis_share must be in (0, 1], emphasis_gap_s >= 0, "
             "saccade_interval_s a range [low, high] above 0")
    if NEUTRAL not in c.expression_names:
        fail(f"every character needs an [expressions.{NEUTRAL}] table (it may be empty)")
    keys = c.expression_keys
    for e in c.expressions:
        if stray := [k for k, _ in e.groups if k not in keys]:
            fail(f"expression {e.name!r} replaces unknown slot(s) {', '.join(stray)}; "
                 f"it may replace {', '.join(keys)}")
    if Path(c.svg).name != c.svg or c.svg in ("", ".", ".."):
        fail(f"svg must be a file name inside the character's folder, got {c.svg!r}")
    if not c.svg_path.is_file():
        fail(f"SVG file {c.svg_path.name} not found")
    try:
        root = ET.parse(c.svg_path).getroot()
    except ET.ParseError as e:
        fail(f"{c.svg_path.name} is not valid XML ({e})")
    if root.tag != f"{{{SVG_NS}}}svg":
        fail(f"{c.svg_path.name} is not an SVG document")
    present = {g.get("id") for g in root if g.tag == f"{{{SVG_NS}}}g"}
    for e in c.expressions:
        if absent := [g for _, g in e.groups if g not in present]:
            fail(f"expression {e.name!r} names group(s) {', '.join(absent)}, but "
                 f"{c.svg_path.name} has no top-level <g id> of that name")
    if absent := [g for g in c.groups if g not in present]:
        fail(f"{c.svg_path.name} has no top-level <g id> for layer(s) {', '.join(absent)}")


def _check_template(t: Template, where: str) -> None:
    def fail(msg: str) -> NoReturn:
        raise InvalidInput(f"{where}: {msg}", code="invalid_template")

    if len(t.bullets.items) > MAX_BULLETS:
        fail(f"bullets.items holds {len(t.bullets.items)} lines; at most {MAX_BULLETS}")
    if min(t.title.size, t.bullets.size, t.panel.width, t.panel.height,
           t.character.height) <= 0:
        fail("sizes (title, bullets, panel, character height) must be positive")
    if t.bullets.max_lines < 1:
        fail("bullets.max_lines must be at least 1")
    if t.aspect not in ASPECTS:
        fail(f"aspect must be one of {', '.join(ASPECTS)}, got {t.aspect!r}")
    second = t.second_character
    if second is not None and second.default and second.default not in list_characters():
        fail(f"second_character.default names no shipped character: {second.default!r}")
    cap = t.captions
    if not (0 < cap.size <= 0.2 and 0 < cap.max_width <= 1 and 0 <= cap.band_opacity <= 1):
        fail("captions: size must be in (0, 0.2], max_width in (0, 1], band_opacity in [0, 1]")


# --- typed TOML reading ----------------------------------------------------------------
