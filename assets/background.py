"""Render a template's background (gradient, discs, title panel, text) at output size.

Shapes are drawn from signed distances in numpy, so every edge is anti-aliased at any
resolution; text is drawn by Pillow with the shipped DejaVu fonts. Sizes come from the
template as fractions of the frame, so 360p and 4K lay out the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from assets.loader import FONTS_DIR, MAX_BULLETS, Color, Template

REGULAR_FONT = FONTS_DIR / "DejaVuSans.ttf"
BOLD_FONT = FONTS_DIR / "DejaVuSans-Bold.ttf"
_ELLIPSIS = "\u2026"

# A signed distance (pixels, negative inside) over a window's pixel centres.
Distance = Callable[[np.ndarray, np.ndarray], np.ndarray]


def render_background(template: Template, width: int, height: int, *,
                      title: str | None = None,
                      bullets: Sequence[str] | None = None) -> np.ndarray:
    """The template's background as (height, width, 4) uint8, opaque (so premultiplied).

    `title` and `bullets` replace the template's defaults; at most three bullets.
    """
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    bullets = tuple(template.bullets.items if bullets is None else bullets)
    if len(bullets) > MAX_BULLETS:
        raise ValueError(f"at most {MAX_BULLETS} bullets, got {len(bullets)}")
    bg, panel, tt, bl = template.background, template.panel, template.title, template.bullets

    t = (np.arange(height, dtype=np.float32) + 0.5) / height
    top, bottom = np.array(bg.top, np.float32), np.array(bg.bottom, np.float32)
    canvas = np.empty((height, width, 3), np.float32)
    canvas[:] = (top + (bottom - top) * t[:, None])[:, None, :]

    for disc in bg.discs:
        _paint(canvas, _circle(disc.x * width, disc.y * height, disc.radius * height),
               disc.color, disc.opacity)
    for rect in bg.rects:
        _paint(canvas, _rounded_rect(rect.x * width, rect.y * height, rect.width * width,
                                     rect.height * height, rect.radius * height),
               rect.color, rect.opacity)

    px, py = panel.x * width, panel.y * height
    pw, ph, pr = panel.width * width, panel.height * height, panel.radius * height
    if panel.shadow_opacity > 0:
        off, blur = panel.shadow_offset * height, max(panel.shadow_blur * height, 1.0)
        _paint(canvas, _rounded_rect(px, py + off, pw, ph, pr), panel.shadow_color,
               panel.shadow_opacity, softness=blur, reach=blur)
    _paint(canvas, _rounded_rect(px, py, pw, ph, pr), panel.color, panel.opacity)

    # Text stays inside the panel, a margin from its right and bottom edges.
    text_right = px + pw - tt.size * height * 0.6
    text = tt.text if title is None else title
    title_font = _fit_font(text, BOLD_FONT, tt.size * height, text_right - tt.x * width)
    title_line = wrap(text, title_font, text_right - tt.x * width, 1)
    if tt.accent_width > 0 and tt.accent_height > 0:
        ah = tt.accent_height * height
        _paint(canvas, _rounded_rect(tt.x * width, tt.y * height + title_font.size * 1.25,
                                     tt.accent_width * width, ah, ah / 2), tt.accent_color, 1.0)

    bullet_px = bl.size * height
    font = ImageFont.truetype(str(REGULAR_FONT), max(1, round(bullet_px)))
    text_x = bl.x * width + bullet_px * 1.1
    line_h = bullet_px * 1.3
    laid_out = _layout_bullets(bullets, font, text_right - text_x, bl.max_lines, line_h,
                               gap=bl.spacing * height - line_h, top=bl.y * height,
                               bottom=py + ph - bullet_px * 0.6)
    for lines in laid_out:  # a marker beside each bullet's first line
        _paint(canvas, _circle(bl.x * width + bullet_px * 0.3, lines[0][0], bullet_px * 0.22),
               bl.marker_color, 1.0)

    canvas += 0.5  # in place: at 4K a temporary is 100 MB of fresh memory
    image = Image.fromarray(np.clip(canvas, 0, 255, out=canvas).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    if title_line:
        draw.text((tt.x * width, tt.y * height), title_line[0], font=title_font,
                  fill=tuple(tt.color), anchor="la")
    for lines in laid_out:
        for centre, line in lines:
            draw.text((text_x, centre), line, font=font, fill=tuple(bl.color), anchor="lm")
    return np.asarray(image.convert("RGBA"))


def _layout_bullets(items: Sequence[str], font: ImageFont.FreeTypeFont, max_width: float,
                    max_lines: int, line_h: float, gap: float, top: float,
                    bottom: float) -> list[list[tuple[float, str]]]:
    """Each bullet's lines as (centre y, text), fitted between `top` and `bottom`.

    When the bullets do not fit, the longest ones lose lines first (down to one each),
    then the gaps shrink: a bullet is never dropped.
    """
    items = [item for item in items if item.strip()]
    wrapped = [wrap(item, font, max_width, max_lines) for item in items]
    room = bottom - top

    def needed() -> float:
        return sum(len(w) for w in wrapped) * line_h + gap * (len(wrapped) - 1)

    while wrapped and needed() > room and max(len(w) for w in wrapped) > 1:
        k = max(range(len(wrapped)), key=lambda n: len(wrapped[n]))
        wrapped[k] = wrap(items[k], font, max_width, len(wrapped[k]) - 1)
    if len(wrapped) > 1 and needed() > room:
        gap = max(0.0, (room - len(wrapped) * line_h) / (len(wrapped) - 1))
    out, y = [], top
    for lines in wrapped:
        out.append([(y + (k + 0.5) * line_h, line) for k, line in enumerate(lines)])
        y += len(lines) * line_h + gap
    return out


def wrap(text: str, font: ImageFont.FreeTypeFont, max_width: float,
         max_lines: int) -> list[str]:
    """Greedy word wrap into at most `max_lines`; the last line ends in an ellipsis
    when the text does not fit."""
    if max_lines < 1:
        return []
    words = " ".join(text.split()).split(" ")
    lines: list[str] = []
    current = ""
    for i, word in enumerate(words):
        candidate = f"{current} {word}".strip()
        if font.getlength(candidate) <= max_width or not current:
            current = candidate
            continue
        lines.append(current)
        current = word
        if len(lines) == max_lines:
            return lines[:-1] + [_ellipsize(" ".join([lines[-1]] + words[i:]), font,
                                            max_width, force=True)]
    if current:
        lines.append(current)
    # A single word wider than the line is cut where it stands.
    return [_ellipsize(line, font, max_width) for line in lines]


def _ellipsize(text: str, font: ImageFont.FreeTypeFont, max_width: float,
               force: bool = False) -> str:
    """Cut `text` so that it plus an ellipsis fits `max_width`."""
    if not force and font.getlength(text) <= max_width:
        return text
    while text and font.getlength(text.rstrip() + _ELLIPSIS) > max_width:
        text = text[:-1]
    return text.rstrip() + _ELLIPSIS


def _fit_font(text: str, path: object, size_px: float,
              max_width: float) -> ImageFont.FreeTypeFont:
    """The font at `size_px`, shrunk (down to 60%) until `text` fits on one line."""
    size = max(1, round(size_px))
    font = ImageFont.truetype(str(path), size)
    while size > max(1, round(size_px * 0.6)) and font.getlength(text) > max_width:
        size -= 1
        font = ImageFont.truetype(str(path), size)
    return font


def _circle(cx: float, cy: float, r: float) -> tuple[tuple[float, ...], Distance]:
    def dist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.hypot(x - cx, y - cy) - r
    return (cx - r, cy - r, cx + r, cy + r), dist


def _rounded_rect(x: float, y: float, w: float, h: float,
                  r: float) -> tuple[tuple[float, ...], Distance]:
    r = min(r, w / 2, h / 2)
    cx, cy, hx, hy = x + w / 2, y + h / 2, w / 2 - r, h / 2 - r

    def dist(px: np.ndarray, py: np.ndarray) -> np.ndarray:
        qx, qy = np.abs(px - cx) - hx, np.abs(py - cy) - hy
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        return outside + np.minimum(np.maximum(qx, qy), 0) - r
    return (x, y, x + w, y + h), dist


def _paint(canvas: np.ndarray, shape: tuple[tuple[float, ...], Distance], color: Color,
           opacity: float, softness: float = 1.0, reach: float = 0.0) -> None:
    """Blend `color` where the shape's distance is negative, in its window only.

    `softness` is the width in pixels of the edge ramp (1: anti-aliased; more: a soft
    shadow); `reach` grows the window for a ramp wider than a pixel.

    The window is worked in blocks of BLOCK pixels. Every distance here is Euclidean
    (it changes by at most a pixel per pixel), so a block whose centre lies deeper
    inside, or farther outside, than its half-diagonal plus half the ramp is wholly
    covered, or wholly clear: only blocks on the edge need a distance per pixel (a
    4K panel was 0.1 s per render). Covered blocks get the same float32 arithmetic
    with alpha = opacity, so the result is what a distance per pixel gives.
    """
    (x0, y0, x1, y1), dist = shape
    h, w = canvas.shape[:2]
    pad = reach + 1
    ix0, iy0 = max(0, int(x0 - pad)), max(0, int(y0 - pad))
    ix1, iy1 = min(w, int(x1 + pad) + 1), min(h, int(y1 + pad) + 1)
    if ix0 >= ix1 or iy0 >= iy1:
        return
    rgb = np.array(color, np.float32)
    xs_b = np.arange(ix0, ix1, BLOCK)
    ys_b = np.arange(iy0, iy1, BLOCK)
    xe_b, ye_b = np.minimum(xs_b + BLOCK, ix1), np.minimum(ys_b + BLOCK, iy1)
    centre = dist(((xs_b + xe_b) / 2).astype(np.float32)[None, :],
                  ((ys_b + ye_b) / 2).astype(np.float32)[:, None])
    half_diag = np.hypot((xe_b - xs_b)[None, :], (ye_b - ys_b)[:, None]) / 2
    margin = half_diag + 0.5 * softness
    kind = np.where(centre <= -margin, _COVERED, np.where(centre >= margin, _CLEAR, _EDGE))
    for row, (by0, by1) in enumerate(zip(ys_b, ye_b)):
        for k, start, stop in _runs(kind[row]):
            if k == _CLEAR:
                continue
            bx0, bx1 = int(xs_b[start]), int(xe_b[stop - 1])
            window = canvas[by0:by1, bx0:bx1]
            if k == _COVERED:
                window += (rgb - window) * np.float32(opacity)
                continue
            ys = np.arange(by0, by1, dtype=np.float32)[:, None] + 0.5
            xs = np.arange(bx0, bx1, dtype=np.float32)[None, :] + 0.5
            alpha = np.clip(0.5 - dist(xs, ys) / softness, 0.0, 1.0) * opacity
            window += (rgb - window) * alpha[..., None]


BLOCK = 32  # pixels a side: small enough to follow an edge, big enough for few numpy calls
_COVERED, _EDGE, _CLEAR = 0, 1, 2


def _runs(kinds: np.ndarray) -> list[tuple[int, int, int]]:
    """(kind, start, stop) for each run of equal values in a row of block kinds."""
    cuts = np.flatnonzero(np.diff(kinds)) + 1
    bounds = [0, *cuts.tolist(), len(kinds)]
    return [(int(kinds[a]), a, b) for a, b in zip(bounds, bounds[1:])]
