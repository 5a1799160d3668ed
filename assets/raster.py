"""Rasterize a character's SVG layers, each on its own, at the output size.

Every layer is drawn on the same pixel grid (the whole canvas scaled to the requested
height), then cropped to its alpha bounding box; the crop's corner is the layer's
offset, so layers placed at their offsets line up exactly. Vector art is drawn at the
size it is shown: a 4K render gets 4K strokes, never an upscaled 360p bitmap.
"""

from __future__ import annotations

import copy
import functools
import io
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import cairosvg
import numpy as np
from PIL import Image

from assets.loader import SVG_NS, Character
from farm.errors import InvalidInput
from node.render.types import Sprite

_G = f"{{{SVG_NS}}}g"
_DEFS = f"{{{SVG_NS}}}defs"
_PROBE_HEIGHT = 350  # pixels; only used to find each layer's extent


@dataclass(frozen=True)
class Layer:
    """A rasterized layer and where its top-left pixel sits on the character raster."""

    sprite: Sprite
    x: int
    y: int


@dataclass(frozen=True, eq=False)
class CharacterRaster:
    """All layers of one character at one size; keyed by SVG group id."""

    width: int
    height: int
    layers: dict[str, Layer]


def raster_size(character: Character, height: int) -> tuple[int, int]:
    """(width, height) in pixels of the whole canvas drawn `height` pixels tall."""
    width = max(1, round(character.canvas.width * height / character.canvas.height))
    return width, height


@functools.lru_cache(maxsize=8)
def rasterize_character(character: Character, height: int) -> CharacterRaster:
    """Rasterize every layer of `character` with its canvas `height` pixels tall.

    Cached per (character, height) within the process; the returned arrays are
    read-only because callers share them.
    """
    if height < 1:
        raise ValueError(f"height must be a positive number of pixels, got {height}")
    width, height = raster_size(character, height)
    scale = height / character.canvas.height
    root = ET.parse(character.svg_path).getroot()
    layers = {}
    for group, (bx0, by0, bx1, by1) in _canvas_boxes(character).items():
        # Draw only the layer's window of the full grid: same pixels, far less work.
        x0, y0 = max(0, math.floor(bx0 * scale)), max(0, math.floor(by0 * scale))
        x1, y1 = min(width, math.ceil(bx1 * scale)), min(height, math.ceil(by1 * scale))
        rgba = render_window(root, group, (x0, y0, x1 - x0, y1 - y0), scale)
        box = alpha_bbox(rgba)
        if box is None:
            raise InvalidInput(f"character {character.name!r}: layer {group!r} draws nothing",
                               code="invalid_character")
        crop = np.ascontiguousarray(rgba[box[1]:box[3], box[0]:box[2]])
        crop.flags.writeable = False
        layers[group] = Layer(Sprite(group, crop), x0 + box[0], y0 + box[1])
    return CharacterRaster(width, height, layers)


@functools.lru_cache(maxsize=16)
def _canvas_boxes(character: Character) -> dict[str, tuple[float, float, float, float]]:
    """Each layer's bounding box in canvas units, from a small probe raster.

    Padded by two probe pixels: anything that covers part of a pixel leaves alpha
    there, so the true extent lies inside.
    """
    width, height = raster_size(character, _PROBE_HEIGHT)
    scale = height / character.canvas.height
    root = ET.parse(character.svg_path).getroot()
    boxes = {}
    for group in character.groups:
        box = alpha_bbox(render_window(root, group, (0, 0, width, height), scale))
        if box is None:
            raise InvalidInput(f"character {character.name!r}: layer {group!r} draws nothing",
                               code="invalid_character")
        x0, y0, x1, y1 = box
        boxes[group] = ((x0 - 2) / scale, (y0 - 2) / scale, (x1 + 2) / scale, (y1 + 2) / scale)
    return boxes


def layer_document(root: ET.Element, group_id: str,
                   view_box: tuple[float, float, float, float] | None = None) -> bytes:
    """An SVG document holding only `group_id` (and every <defs>) from `root`.

    `view_box` (x, y, width, height in canvas units) replaces the root's viewBox.
    """
    attrib = dict(root.attrib)
    if view_box is not None:
        attrib["viewBox"] = " ".join(repr(float(v)) for v in view_box)
        attrib["preserveAspectRatio"] = "none"
    doc = ET.Element(root.tag, attrib)
    found = False
    for child in root:
        if child.tag == _DEFS:
            doc.append(copy.deepcopy(child))
        elif child.tag == _G and child.get("id") == group_id:
            doc.append(copy.deepcopy(child))
            found = True
    if not found:
        raise KeyError(f"no top-level <g id={group_id!r}> in the SVG")
    # ElementTree writes the SVG namespace as a prefix (ns0:); cairosvg reads that fine.
    return ET.tostring(doc)


def render_window(root: ET.Element, group_id: str, window: tuple[int, int, int, int],
                  scale: float) -> np.ndarray:
    """Draw one group: pixels `window` (x, y, w, h) of the canvas drawn at `scale`.

    Returns (h, w, 4) premultiplied RGBA uint8. Pixel (i, j) of the result is pixel
    (x + i, y + j) of the whole canvas drawn at that scale, so windows line up.
    """
    x, y, w, h = window
    view_box = (x / scale, y / scale, w / scale, h / scale)
    png = cairosvg.svg2png(bytestring=layer_document(root, group_id, view_box),
                           output_width=w, output_height=h)
    with Image.open(io.BytesIO(png)) as im:
        straight = np.asarray(im.convert("RGBA"))
    return premultiply(straight)


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """Straight-alpha (h, w, 4) uint8 to premultiplied, rounding to nearest."""
    alpha = rgba[..., 3:4].astype(np.uint16)
    out = np.empty_like(rgba)
    out[..., :3] = (rgba[..., :3] * alpha + 127) // 255
    out[..., 3] = rgba[..., 3]
    return out


def alpha_bbox(rgba: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), end-exclusive, of the pixels with alpha > 0; None if none."""
    alpha = rgba[..., 3]
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
