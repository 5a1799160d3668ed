"""Build a render's scene: the art drawn once, and the placements of every frame.

The character stands where the template says, in the expression asked for; each
frame picks the mouth from the lip-sync timeline, the eyes from a seeded blink
schedule, and moves the layers by a gentle breathing bob, a tiny head sway, glances
of the eyes (saccades) and, on the stressed words, a brow raise and a nod
(node/render/gestures.py). Offsets are whole pixels, so runs of consecutive frames
have identical placements (the renderer draws those once), and the same inputs
always give the same frames.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from assets.background import render_background
from assets.loader import MOUTH_SHAPES, NEUTRAL, Character, Idle, Template
from assets.template import CharacterSpot
from assets.overlay import Overlay
from assets.raster import Layer, rasterize_character
from farm.timeline import WordTiming
from node.render.captions import CaptionTrack, build_captions
from node.render.gestures import (Saccades, brow_envelope, emphasis_times, nod_envelope,
                                  saccades)
from node.render.types import DrawList, Placement, SceneArt, Sprite

_EPS = 1e-9  # keeps float noise (0.1 * 30 = 3.0000000000000004) from adding a frame


@dataclass(frozen=True)
class _Slot:
    name: str
    with_head: bool
    layer: Layer | None  # None for the per-frame slots, "eyes" and "mouth"


@dataclass(frozen=True, eq=False)
class Actor:
    """One character on stage: its layers and where they go in each frame."""

    origin: tuple[int, int]
    slots: tuple[_Slot, ...]
    eyes: tuple[Layer, Layer]  # open, closed
    mouths: dict[str, Layer]
    shapes: str  # one Rhubarb letter per frame
    closed: frozenset[int]  # frames with the eyes closed
    idle: Idle
    char_height: int
    saccades: Saccades = Saccades((0,), ((0, 0),))
    emphasis: tuple[float, ...] = ()  # seconds: the stressed words' starts
    brow_lift: int = 0  # pixels, at the top of a brow raise
    nod: int = 0  # pixels, at the bottom of a nod
    nod_s: float = 0.3

    def placements(self, i: int, t: float) -> list[Placement]:
        """Frame `i` (at `t` seconds) of this character, back to front."""
        idle, size = self.idle, self.char_height
        # Breathing lifts the whole character; the head adds a slow figure-of-eight.
        body_dy = -round(idle.breath_amplitude * size
                         * math.sin(2 * math.pi * t / idle.breath_period_s))
        phase = 2 * math.pi * t / idle.head_period_s
        head_dx = round(idle.head_amplitude[0] * size * math.sin(phase))
        head_dy = round(idle.head_amplitude[1] * size * math.sin(2 * phase + 1.0))
        head_dy += round(self.nod * nod_envelope(t, self.emphasis, self.nod_s))
        brows_dy = -round(self.brow_lift * brow_envelope(t, self.emphasis))
        ox, oy = self.origin[0], self.origin[1] + body_dy
        out = []
        for slot in self.slots:
            layer = slot.layer
            dx, dy = (head_dx, head_dy) if slot.with_head else (0, 0)
            if slot.name == "eyes":
                layer = self.eyes[1] if i in self.closed else self.eyes[0]
                gaze = self.saccades.at(i)
                dx, dy = dx + gaze[0], dy + gaze[1]
            elif slot.name == "mouth":
                layer = self.mouths[self.shapes[i]]
            elif slot.name == "brows":
                dy += brows_dy
            out.append(Placement(layer.sprite.name, float(ox + dx + layer.x),
                                 float(oy + dy + layer.y)))
        return out


@dataclass(frozen=True)
class CastMember:
    """Who stands where, saying what: a character, its spot on the template, the
    timeline its mouth follows, and its expression."""

    character: Character
    spot: CharacterSpot
    timeline: Any
    expression: str = NEUTRAL


@dataclass(frozen=True, eq=False)
class Scene:
    """What a compositor draws: `art` once, then `frame(i)` for i in range(n_frames)."""

    art: SceneArt
    n_frames: int
    fps: float
    actors: tuple[Actor, ...]
    _captions: CaptionTrack | None = None
    _overlays: tuple[Placement, ...] = ()  # over the characters, under the captions

    def __repr__(self) -> str:
        return (f"Scene({self.art.width}x{self.art.height}, {self.fps:g} fps, "
                f"{self.n_frames} frames, {len(self.actors)} characters, "
                f"{len(self.art.sprites)} sprites)")

    def frame(self, i: int) -> DrawList:
        """The placements of frame `i`, back to front."""
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range 0..{self.n_frames - 1}")
        t = i / self.fps
        out = []
        for actor in self.actors:
            out.extend(actor.placements(i, t))
        out.extend(self._overlays)
        if self._captions is not None:
            out.extend(self._captions.placements(i))
        return tuple(out)

    def frame_key(self, i: int) -> Hashable:
        """Equal for two frames exactly when their placements are equal."""
        return self.frame(i)

    def poster_frame(self) -> int:
        """The frame a render's poster shows: from a third of the way in, the first where
        someone talks with open eyes (a still of someone talking), else that third."""
        start = self.n_frames // 3
        for i in range(start, self.n_frames):
            if any(a.shapes[i] not in "AX" and i not in a.closed for a in self.actors):
                return i
        return start

    def mouth_shape(self, i: int, actor: int = 0) -> str:
        """The Rhubarb mouth shape the `actor`-th character shows in frame `i`."""
        return self.actors[actor].shapes[i]


def build_scene(template: Template, character: Character, timeline: Any, width: int,
                height: int, fps: float, *, title: str | None = None,
                bullets: Sequence[str] | None = None,
                captions: Sequence[WordTiming] | None = None,
                expression: str = NEUTRAL,
                overlays: Sequence[Overlay] = ()) -> Scene:
    """Lay out `character` on `template` at width x height and time it to `timeline`.

    `timeline` needs `.duration` (seconds) and `.sample(fps, n_frames)` returning one
    mouth shape letter per frame; its `.cues` (with intensities) and `.words`, where
    it has them, time the emphasis gestures. `expression` names one of the
    character's expressions (InvalidInput unknown_expression otherwise).
    `title` and `bullets` replace the template's text.
    `captions`, timed words as shown (farm.captions.display_words), are burned in
    with the template's caption style, the word being spoken highlighted.
    `overlays` (assets.overlay: foreground, logo, watermark) are drawn over the
    character, in order, in every frame.
    """
    return build_cast(template, [CastMember(character, template.character, timeline, expression)],
                      width, height, fps, title=title, bullets=bullets, captions=captions,
                      overlays=overlays)


def build_cast(template: Template, cast: Sequence[CastMember], width: int, height: int,
               fps: float, *, title: str | None = None, bullets: Sequence[str] | None = None,
               captions: Sequence[WordTiming] | None = None,
               overlays: Sequence[Overlay] = ()) -> Scene:
    """`build_scene` for several characters, drawn in `cast` order (back to front).
    Every member's timeline lasts as long as the first's."""
    if not cast:
        raise ValueError("a scene needs at least one character")
    for member in cast:
        member.character.expression(member.expression)  # unknown_expression, before any work
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    n_frames = max(1, math.ceil(float(cast[0].timeline.duration) * fps - _EPS))
    sprites: dict[str, Sprite] = {}
    actors = []
    for k, member in enumerate(cast):
        # A second Toonz at another size is other pixels under the same layer names.
        prefix = "" if k == 0 else f"cast{k}:"
        actor, used = _actor(member, width, height, fps, n_frames, prefix)
        actors.append(actor)
        sprites.update(used)
    for o in overlays:
        sprites[f"overlay-{o.name}"] = Sprite(f"overlay-{o.name}", o.rgba)
    track = None
    if captions:
        track = build_captions(captions, template.captions, width, height, fps, n_frames)
        sprites.update(track.sprites)
    art = SceneArt(width, height,
                   render_background(template, width, height, title=title, bullets=bullets),
                   sprites)
    return Scene(art=art, n_frames=n_frames, fps=float(fps), actors=tuple(actors),
                 _captions=track,
                 _overlays=tuple(Placement(f"overlay-{o.name}", float(o.x), float(o.y))
                                 for o in overlays))


def _actor(member: CastMember, width: int, height: int, fps: float, n_frames: int,
           prefix: str) -> tuple[Actor, dict[str, Sprite]]:
    """One cast member laid out, and the sprites of its expression."""
    character, spot, timeline = member.character, member.spot, member.timeline
    look = character.expression(member.expression)
    shapes = "".join(timeline.sample(fps, n_frames))
    if len(shapes) != n_frames or not set(shapes) <= set(MOUTH_SHAPES):
        raise ValueError(f"timeline.sample gave {len(shapes)} shapes from "
                         f"{sorted(set(shapes))!r}; expected {n_frames} of {MOUTH_SHAPES}")
    raster = rasterize_character(character, max(1, round(spot.height * height)))
    origin = (round(spot.x * width - raster.width / 2),
              round(spot.bottom * height - raster.height))
    layers = raster.layers
    if prefix:
        layers = {name: Layer(Sprite(prefix + layer.sprite.name, layer.sprite.rgba), layer.x, layer.y)
                  for name, layer in layers.items()}
    slots = tuple(_Slot(name, name in character.layers.head,
                        None if name in ("eyes", "mouth") else layers[look.group(name, name)])
                  for name in character.layers.order)
    eyes = (layers[look.group("eyes_open", character.eyes.open)],
            layers[look.group("eyes_closed", character.eyes.closed)])
    mouths = {s: layers[look.group(f"mouth_{s}", character.mouth_group(s))] for s in MOUTH_SHAPES}
    used = [s.layer for s in slots if s.layer is not None] + list(eyes) + list(mouths.values())
    gestures = character.gestures
    actor = Actor(
        origin=origin, slots=slots, eyes=eyes, mouths=mouths, shapes=shapes,
        closed=blink_frames(character.idle, n_frames / fps, fps, n_frames),
        idle=character.idle, char_height=raster.height,
        saccades=saccades(gestures, character.idle.seed, raster.height, n_frames / fps, fps),
        emphasis=emphasis_times(getattr(timeline, "cues", ()), getattr(timeline, "words", ()),
                                gestures),
        brow_lift=round(gestures.brow_lift * raster.height),
        nod=round(gestures.nod * raster.height), nod_s=gestures.nod_s)
    return actor, {layer.sprite.name: layer.sprite for layer in used}  # this expression's only


def blink_frames(idle: Idle, duration_s: float, fps: float, n_frames: int) -> frozenset[int]:
    """Frames with the eyes closed: a blink every few seconds, from a seeded RNG.

    Blink times are drawn in seconds, so every frame rate blinks at the same moments.
    """
    rng = random.Random(idle.seed)
    length = max(1, math.ceil(idle.blink_duration_s * fps - _EPS))
    closed: set[int] = set()
    t = rng.uniform(*idle.first_blink_s)
    while t < duration_s:
        start = round(t * fps)
        if start + length > n_frames:  # no half blink at the very end
            break
        closed.update(range(start, start + length))
        t += rng.uniform(*idle.blink_interval_s)
    return frozenset(closed)
