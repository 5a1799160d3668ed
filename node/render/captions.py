"""Burned-in captions as sprites: a band, and the caption's glyphs over it.

Memory must not grow with the video's length, so nothing is drawn per caption:
each character is rasterized once per colour (normal, and highlighted for the word
being spoken) from the shipped DejaVu font, bands come in a few widths, and each
frame places the glyphs of the caption on screen. Glyph positions come from the
font's advances with kerning (Pillow), rounded to whole pixels so the compositors
take their exact integer path. Both compositors draw these like any other sprite.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from assets.background import BOLD_FONT
from assets.loader import Captions, Color
from farm.captions import CaptionCue, caption_cues
from farm.timeline import WordTiming
from node.render.types import Placement, Sprite

# Band widths are rounded up to this fraction of the frame width: a handful of
# band sprites serve every caption.
BAND_STEP = 0.04
_SUPERSAMPLE = 4  # the band's rounded corners are drawn 4x and reduced: smooth edges


@dataclass(frozen=True)
class _Cue:
    start: int  # first frame shown
    end: int  # first frame no longer shown
    band: Placement
    glyphs: tuple[tuple[str, str, int, int, int], ...]  # normal, highlighted, x, y, word
    word_starts: tuple[int, ...]  # frame each word starts


@dataclass(frozen=True, eq=False)
class CaptionTrack:
    """The sprites captions need, and what each frame shows."""

    sprites: dict[str, Sprite]
    cues: tuple[_Cue, ...]
    starts: tuple[int, ...]  # each cue's first frame, for bisecting
    _last: list = field(default_factory=lambda: [None, ()], repr=False)  # (cue, word), glyphs

    def placements(self, i: int) -> tuple[Placement, ...]:
        """Frame `i`'s caption: the band, then every glyph, the spoken word highlighted."""
        k = bisect.bisect_right(self.starts, i) - 1
        if k < 0 or i >= self.cues[k].end:
            return ()
        cue = self.cues[k]
        spoken = max(0, bisect.bisect_right(cue.word_starts, i) - 1)
        # The same tuple while the caption and its spoken word hold: a frame compares
        # equal to the one before it element by element, each element by identity.
        if self._last[0] != (k, spoken):
            self._last[:] = [(k, spoken), (cue.band,) + tuple(
                Placement(hi if word == spoken else normal, float(x), float(y))
                for normal, hi, x, y, word in cue.glyphs)]
        return self._last[1]


def build_captions(words: Sequence[WordTiming], style: Captions, width: int, height: int,
                   fps: float, n_frames: int) -> CaptionTrack:
    """Lay out `words` (display words, see farm.captions.display_words) as captions."""
    font = ImageFont.truetype(str(BOLD_FONT), max(8, round(style.size * height)))
    pad_x, pad_y = round(0.6 * font.size), round(0.35 * font.size)
    max_text = max(1, style.max_width * width - 2 * pad_x)
    # A line as long as the band holds, at this font's typical letter width.
    per_char = font.getlength("the quick brown fox jumps over a lazy dog") / 41
    cues = caption_cues(words, max_chars=max(8, int(max_text / per_char)))
    ascent, descent = font.getmetrics()
    line_h = ascent + descent
    glyphs: dict[str, tuple[Sprite, int, int]] = {}  # name -> sprite, left, top
    bands: dict[tuple[int, int], Sprite] = {}
    out: list[_Cue] = []
    for cue in cues:
        lines = _wrap(cue, font, max_text)
        text_w = max(font.getlength(" ".join(w.word for _, w in line)) for line in lines)
        step = max(2, round(BAND_STEP * width))
        band_w = min(width - width % 2, step * math.ceil((text_w + 2 * pad_x) / step))
        band_h = len(lines) * line_h + 2 * pad_y
        if (band_w, band_h) not in bands:
            bands[(band_w, band_h)] = _band(f"caption-band-{band_w}x{band_h}", band_w, band_h,
                                            pad_y * 1.2, style.band_color, style.band_opacity)
        bx = round(style.x * width - band_w / 2)
        by = round(style.y * height - band_h / 2)
        placed = []
        for row, line in enumerate(lines):
            text = " ".join(w.word for _, w in line)
            x0 = bx + (band_w - font.getlength(text)) / 2
            y0 = by + pad_y + row * line_h
            offset = 0
            for n, (word_index, w) in enumerate(line):
                if n:
                    offset += 1  # the space before this word
                for ch in w.word:
                    advance = font.getlength(text[:offset])
                    offset += 1
                    if ch.isspace():
                        continue
                    names = [_glyph(glyphs, font, ch, c) for c in (style.color, style.highlight_color)]
                    if names[0] is None:
                        continue
                    _, left, top = glyphs[names[0]]
                    placed.append((names[0], names[1], round(x0 + advance + left), y0 + top,
                                   word_index))
        start = math.floor(cue.start * fps + 1e-9)
        end = min(n_frames, max(start + 1, math.ceil(cue.end * fps - 1e-9)))
        starts = tuple(max(start, math.floor(w.start * fps + 1e-9)) for w in cue.words)
        out.append(_Cue(start, end, Placement(bands[(band_w, band_h)].name, float(bx), float(by)),
                        tuple(placed), starts))
    sprites = {name: sprite for name, (sprite, _, _) in glyphs.items()}
    sprites.update({s.name: s for s in bands.values()})
    return CaptionTrack(sprites, tuple(out), tuple(c.start for c in out))


def _wrap(cue: CaptionCue, font: ImageFont.FreeTypeFont, max_width: float) -> list[list]:
    """The cue's words, numbered within the cue, in lines no wider than `max_width`
    (a single word wider than that gets a line of its own)."""
    lines: list[list] = [[]]
    for k, w in enumerate(cue.words):
        candidate = " ".join(x.word for _, x in lines[-1] + [(k, w)])
        if lines[-1] and font.getlength(candidate) > max_width:
            lines.append([])
        lines[-1].append((k, w))
    return lines


def _glyph(cache: dict[str, tuple[Sprite, int, int]], font: ImageFont.FreeTypeFont, ch: str, color: Color) -> str | None:
    """The sprite name of `ch` in `color` (rasterized on first use); None for a
    character that draws nothing."""
    name = f"caption-{font.size}-{color.r:02x}{color.g:02x}{color.b:02x}-{ord(ch):x}"
    if name in cache:
        return name
    left, top, right, bottom = font.getbbox(ch, anchor="la")
    if right <= left or bottom <= top:
        return None
    mask = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).text((-left, -top), ch, font=font, fill=255, anchor="la")
    a = np.asarray(mask, dtype=np.uint16)
    rgba = np.empty(a.shape + (4,), np.uint8)
    for c, value in enumerate(color):
        rgba[..., c] = (a * value + 127) // 255  # premultiplied
    rgba[..., 3] = a
    cache[name] = (Sprite(name, rgba), left, top)
    return name


def _band(name: str, width: int, height: int, radius: float, color: Color, opacity: float) -> Sprite:
    """A rounded rectangle in `color` at `opacity`, premultiplied, edges anti-aliased."""
    s = _SUPERSAMPLE
    mask = Image.new("L", (width * s, height * s), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, width * s - 1, height * s - 1),
                                           radius=round(radius * s), fill=255)
    a = np.asarray(mask.resize((width, height), Image.Resampling.BOX), dtype=np.float64)
    a = np.rint(a * opacity)
    rgba = np.empty((height, width, 4), np.uint8)
    for c, value in enumerate(color):
        rgba[..., c] = np.rint(a * value / 255)
    rgba[..., 3] = a
    return Sprite(name, rgba)
