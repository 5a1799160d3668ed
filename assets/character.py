"""What a character is: its canvas, layers, rig, idle motion, gestures and
expressions, as read from `character.toml` (assets/loader.py finds and checks it)."""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from pathlib import Path

from farm.errors import InvalidInput

MOUTH_SHAPES = "ABCDEFGHX"  # Rhubarb Lip Sync's shapes
NEUTRAL = "neutral"  # the expression every character has, and renders get by default
EYE_STATES = ("eyes_open", "eyes_closed")  # expression keys for the two eye groups


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

