"""What a template is: background, panel, title, bullets, where the character
stands, captions, foreground and logo box, as read from a template's TOML file
(assets/loader.py finds and checks it). Positions and sizes are fractions of the frame."""

from __future__ import annotations

from dataclasses import dataclass, field

from assets.schema import Color

MAX_BULLETS = 3
ASPECTS = ("16:9", "9:16")


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
    default: str = ""  # who stands here when a render names no one (a second character)


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
    # A second character, for two-person templates (podcast): transcripts with
    # speaker labels say which of the two speaks when.
    second_character: CharacterSpot | None = None

