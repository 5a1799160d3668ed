"""What is drawn over the character: a template's foreground (a news desk), a
customer's logo, and the free tier's watermark. Each is one premultiplied RGBA
sprite with its top-left position, rasterized at output size.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from assets.background import BOLD_FONT, _rounded_rect
from assets.loader import Template
from farm.errors import InvalidInput

WATERMARK_TEXT = "Made with Toonz Farm"
WATERMARK_SIZE = 0.032  # text height, fraction of the frame's shorter side
WATERMARK_OPACITY = 0.55
# A logo file larger than this is refused before decoding (a decompression bomb
# is a small file that decodes huge: Pillow's own pixel limit guards that).
MAX_LOGO_BYTES = 2 * 1024 * 1024
MAX_LOGO_PIXELS = 4096 * 4096


class Overlay(NamedTuple):
    name: str
    rgba: np.ndarray  # (h, w, 4) uint8 premultiplied
    x: int
    y: int


def foreground(template: Template, width: int, height: int) -> Overlay | None:
    """The template's foreground rectangles as one sprite over their bounding box."""
    rects = template.foreground
    if not rects:
        return None
    boxes = [(r.x * width, r.y * height, (r.x + r.width) * width, (r.y + r.height) * height)
             for r in rects]
    x0, y0 = max(0, int(min(b[0] for b in boxes))), max(0, int(min(b[1] for b in boxes)))
    x1 = min(width, int(np.ceil(max(b[2] for b in boxes))) + 1)
    y1 = min(height, int(np.ceil(max(b[3] for b in boxes))) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    pre = np.zeros((y1 - y0, x1 - x0, 4), np.float32)  # premultiplied, 0..1
    for r, (bx0, by0, bx1, by1) in zip(rects, boxes):
        shape = _rounded_rect(bx0 - x0, by0 - y0, bx1 - bx0, by1 - by0, r.radius * height)
        _over(pre, _coverage(shape, x1 - x0, y1 - y0) * r.opacity, r.color)
    return Overlay("foreground", _to_uint8(pre), x0, y0)


def watermark(width: int, height: int, text: str = WATERMARK_TEXT) -> Overlay:
    """The free tier's mark: light text on a soft dark pill, bottom-left."""
    short = min(width, height)
    font = ImageFont.truetype(str(BOLD_FONT), max(8, round(WATERMARK_SIZE * short)))
    pad = round(font.size * 0.5)
    tw = round(font.getlength(text))
    ascent, descent = font.getmetrics()
    w, h = tw + 2 * pad, ascent + descent + pad
    pre = np.zeros((h, w, 4), np.float32)
    _over(pre, _coverage(_rounded_rect(0, 0, w, h, h / 2), w, h) * 0.45, (20, 24, 36))
    text_mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(text_mask).text((pad, h / 2), text, font=font, fill=255, anchor="lm")
    _over(pre, np.asarray(text_mask, np.float32) / 255.0, (255, 255, 255))
    margin = round(0.025 * short)
    return Overlay("watermark", _to_uint8(pre * WATERMARK_OPACITY), margin, height - margin - h)


def logo(path: Path, template: Template, width: int, height: int) -> Overlay:
    """A customer's logo (PNG, JPEG or WebP) fitted into the template's logo box."""
    spot = template.logo
    if path.stat().st_size > MAX_LOGO_BYTES:
        raise InvalidInput(f"the logo is {path.stat().st_size:,} bytes; the limit is {MAX_LOGO_BYTES:,}",
                           code="logo_too_large")
    try:
        with Image.open(path) as im:
            if im.format not in ("PNG", "JPEG", "WEBP"):
                raise InvalidInput(f"the logo must be PNG, JPEG or WebP, not {im.format}",
                                   code="invalid_logo")
            if im.width * im.height > MAX_LOGO_PIXELS:
                raise InvalidInput(f"the logo is {im.width}x{im.height}; at most {MAX_LOGO_PIXELS:,} pixels",
                                   code="logo_too_large")
            rgba = im.convert("RGBA")
    except (OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise InvalidInput(f"the logo could not be read: {exc}", code="invalid_logo") from None
    box_w, box_h = max(1, round(spot.width * width)), max(1, round(spot.height * height))
    scale = min(box_w / rgba.width, box_h / rgba.height)
    size = (max(1, round(rgba.width * scale)), max(1, round(rgba.height * scale)))
    # Resample premultiplied, or transparent pixels' colours bleed into the edges.
    pre = rgba.convert("RGBa").resize(size, Image.Resampling.LANCZOS)
    out = np.asarray(pre, np.float32)
    out = np.rint(out * spot.opacity).clip(0, 255).astype(np.uint8)
    x = round(spot.x * width) - size[0]
    return Overlay("logo", out, x, round(spot.y * height))


def _coverage(shape, width: int, height: int) -> np.ndarray:
    """A shape's anti-aliased coverage (0..1) of each pixel of a width x height box."""
    _, dist = shape
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(width, dtype=np.float32)[None, :] + 0.5
    return np.clip(0.5 - dist(xs, ys), 0.0, 1.0)


def _over(pre: np.ndarray, alpha: np.ndarray, color) -> None:
    """Composite `color` at coverage `alpha` over premultiplied `pre` (0..1), in place."""
    src = np.array(color, np.float32) / 255.0
    keep = (1.0 - alpha)[..., None]
    pre[..., :3] = pre[..., :3] * keep + src * alpha[..., None]
    pre[..., 3] = pre[..., 3] * keep[..., 0] + alpha


def _to_uint8(pre: np.ndarray) -> np.ndarray:
    return np.rint(pre * 255.0).clip(0, 255).astype(np.uint8)
