"""Find, load and validate characters and templates shipped in this package.

A character is a folder holding `character.toml` and the SVG it names; a template is
one `.toml` file. Strings are names looked up in the package; `os.PathLike` values are
paths (tests and tools only: a name from a request can never reach the file system).
Every problem is an `InvalidInput` with a machine-readable code.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, make_dataclass
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, get_args, get_origin, get_type_hints

from farm.errors import InvalidInput

PACKAGE_DIR = Path(__file__).resolve().parent
CHARACTERS_DIR = PACKAGE_DIR / "characters"
TEMPLATES_DIR = PACKAGE_DIR / "templates"
FONTS_DIR = PACKAGE_DIR / "fonts"

MOUTH_SHAPES = "ABCDEFGHX"  # Rhubarb Lip Sync's shapes
NEUTRAL = "neutral"  # the expression every character has, and renders get by default
EYE_STATES = ("eyes_open", "eyes_closed")  # expression keys for the two eye groups
MAX_BULLETS = 3
ASPECTS = ("16:9", "9:16")
SVG_NS = "http://www.w3.org/2000/svg"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_HEX = re.compile(r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


class Color(NamedTuple):
    """An sRGB colour, 0-255 per channel; written `#rgb` or `#rrggbb` in TOML."""

    r: int
    g: int
    b: int


# --- character ---------------------------------------------------------------------

@dataclass(frozen=True)
class Canvas:
    width: int
    height: int


@dataclass(frozen=True)
class Layers:
    order: tuple[str, ...]  # slots, back to front; "eyes" and "mouth" are per frame
    head: tuple[str, ...]  # the slots that move with the head


@dataclass(frozen=True)
class Eyes:
    open: str
    closed: str


# The SVG group id for each Rhubarb Lip Sync mouth shape: fields A, B, ... H, X.
Mouths = make_dataclass("Mouths", [(shape, str) for shape in MOUTH_SHAPES], frozen=True)


@dataclass(frozen=True)
class Rig:
    head_pivot: tuple[float, float]  # canvas units
    mouth_box: tuple[float, float, float, float]  # x, y, width, height; canvas units


@dataclass(frozen=True)
class Idle:
    breath_period_s: float
    breath_amplitude: float  # fraction of the character's height
    head_period_s: float
    head_amplitude: tuple[float, float]  # x, y; fractions of the character's height
    first_blink_s: tuple[float, float]
    blink_interval_s: tuple[float, float]
    blink_duration_s: float
    seed: int


@dataclass(frozen=True)
class Gestures:
    """Motion that follows the speech, and the gaze; sizes are fractions of the
    character's height. Optional in the TOML: these defaults suit a bust."""

    brow_lift: float = 0.008  # the brows rise this much on an emphasised word
    nod: float = 0.006  # and the head dips this much
    nod_s: float = 0.3  # down and back up again
    emphasis_share: float = 0.15  # at most the loudest 15% of words are emphasised
    emphasis_gap_s: float = 1.5  # and never two within 1.5 s
    saccade_interval_s: tuple[float, float] = (1.0, 3.0)  # the gaze moves this often
    saccade_amplitude: tuple[float, float] = (0.003, 0.0015)  # x, y: eyes move this far


@dataclass(frozen=True)
class Expression:
    """A look or pose: SVG groups that replace the default of some slots.

    Keys are layer slots (not "eyes" or "mouth"), "eyes_open", "eyes_closed", or
    "mouth_<shape>" for a mouth shape (a happy rest mouth, say).
    """

    name: str
    groups: tuple[tuple[str, str], ...] = ()  # (key, SVG group id)

    def group(self, key: str, default: str) -> str:
        """The group drawn for `key` with this expression."""
        return dict(self.groups).get(key, default)


@dataclass(frozen=True)
class Character:
    name: str
    display_name: str
    svg: str  # file name, relative to the character's folder
    canvas: Canvas
    layers: Layers
    eyes: Eyes
    mouths: Mouths  # type: ignore[valid-type]
    rig: Rig
    idle: Idle
    gestures: Gestures = field(default_factory=Gestures)
    expressions: tuple[Expression, ...] = ()  # set by the loader from [expressions.*]
    folder: Path = Path()  # set by the loader, not read from the TOML

    @property
    def svg_path(self) -> Path:
        return self.folder / self.svg

    def mouth_group(self, shape: str) -> str:
        """The SVG group drawn for a Rhubarb mouth shape letter."""
        if shape not in MOUTH_SHAPES:
            raise KeyError(shape)
        return getattr(self.mouths, shape)

    @property
    def groups(self) -> tuple[str, ...]:
        """Every SVG group the character uses: the defaults in draw order, then the
        ones only expressions name."""
        out: list[str] = []
        for slot in self.layers.order:
            if slot == "eyes":
                out += [self.eyes.open, self.eyes.closed]
            elif slot == "mouth":
                out += [self.mouth_group(s) for s in MOUTH_SHAPES]
            else:
                out.append(slot)
        for e in self.expressions:
            out += [g for _, g in e.groups if g not in out]
        return tuple(out)

    @property
    def expression_names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.expressions)

    def expression(self, name: str) -> Expression:
        """The named expression; InvalidInput (unknown_expression) names the choices."""
        for e in self.expressions:
            if e.name == name:
                return e
        raise InvalidInput(f"character {self.name!r} has no expression {name!r}; choose one of "
                           f"{', '.join(self.expression_names)}", code="unknown_expression")

    @property
    def expression_keys(self) -> tuple[str, ...]:
        """What an expression may replace: layer slots, the eye groups, the mouths."""
        slots = tuple(s for s in self.layers.order if s not in ("eyes", "mouth"))
        return slots + EYE_STATES + tuple(f"mouth_{s}" for s in MOUTH_SHAPES)


# --- template ----------------------------------------------------------------------

@dataclass(frozen=True)
class Disc:
    x: float
    y: float
    radius: float
    color: Color
    opacity: float = 1.0


@dataclass(frozen=True)
class Rect:
    """A rounded rectangle, in the frame's fractions (x, width of its width; the rest
    of its height)."""

    x: float
    y: float
    width: float
    height: float
    color: Color
    radius: float = 0.0
    opacity: float = 1.0


@dataclass(frozen=True)
class Background:
    top: Color
    bottom: Color
    discs: tuple[Disc, ...] = ()
    rects: tuple[Rect, ...] = ()  # drawn after the discs, before the panel


@dataclass(frozen=True)
class Panel:
    x: float
    y: float
    width: float
    height: float
    radius: float
    color: Color
    opacity: float = 1.0
    shadow_color: Color = Color(0, 0, 0)
    shadow_opacity: float = 0.0
    shadow_offset: float = 0.0
    shadow_blur: float = 0.0


@dataclass(frozen=True)
class Title:
    text: str
    color: Color
    size: float
    x: float
    y: float
    accent_color: Color = Color(255, 138, 61)
    accent_width: float = 0.0
    accent_height: float = 0.0


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]
    color: Color
    marker_color: Color
    size: float
    x: float
    y: float
    spacing: float
    max_lines: int = 2


@dataclass(frozen=True)
class CharacterSpot:
    x: float  # centre of the character's canvas, fraction of the frame width
    bottom: float  # bottom of the canvas, fraction of the frame height
    height: float  # canvas height, fraction of the frame height


@dataclass(frozen=True)
class LogoSpot:
    """Where a customer's logo goes: its box, in the frame's fractions (the logo keeps
    its aspect ratio inside the box, anchored to the box's top-right corner)."""

    x: float = 0.97  # right edge of the box
    y: float = 0.04  # top of the box
    width: float = 0.14
    height: float = 0.10
    opacity: float = 0.92


@dataclass(frozen=True)
class Captions:
    """Burned-in captions: a band of text, the word being spoken highlighted."""

    enabled: bool = True  # a render may override it
    x: float = 0.5  # centre of the band, fraction of the frame width
    y: float = 0.9  # centre of the band, fraction of the frame height
    size: float = 0.045  # text height, fraction of the frame height
    max_width: float = 0.8  # widest band, fraction of the frame width
    color: Color = Color(255, 255, 255)
    highlight_color: Color = Color(255, 210, 63)
    band_color: Color = Color(31, 42, 68)
    band_opacity: float = 0.8


@dataclass(frozen=True)
class Template:
    name: str
    display_name: str
    background: Background
    panel: Panel
    title: Title
    bullets: Bullets
    character: CharacterSpot
    captions: Captions = field(default_factory=Captions)
    aspect: str = "16:9"  # or "9:16": the quality preset's frame turned upright
    foreground: tuple[Rect, ...] = ()  # drawn over the character (a news desk)
    logo: LogoSpot = field(default_factory=LogoSpot)


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
    character = _build(Character, data, where, "invalid_character", folder=folder,
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
    template = _build(Template, data, f"template {path}", "invalid_template")
    _check_template(template, f"template {path}")
    return template


def parse_color(text: str) -> Color:
    """Parse `#rgb` or `#rrggbb`; ValueError otherwise."""
    if not isinstance(text, str) or not _HEX.match(text):
        raise ValueError(f"expected a colour like '#1f2a44', got {text!r}")
    digits = text[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return Color(*(int(digits[i:i + 2], 16) for i in (0, 2, 4)))


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
    cap = t.captions
    if not (0 < cap.size <= 0.2 and 0 < cap.max_width <= 1 and 0 <= cap.band_opacity <= 1):
        fail("captions: size must be in (0, 0.2], max_width in (0, 1], band_opacity in [0, 1]")


# --- typed TOML reading ----------------------------------------------------------------

def _build(cls: type, data: Any, where: str, code: str, **extra: Any) -> Any:
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

    if tp is Color:
        try:
            return parse_color(value)
        except ValueError as e:
            raise InvalidInput(f"{where}: {e}", code=code) from None
    if is_dataclass(tp):
        return _build(tp, value, where, code)
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
