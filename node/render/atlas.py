"""Shelf packing of sprites into one texture atlas (pure numpy, no GL).

The atlas keeps a transparent gutter of `pad` pixels around every sprite, so
linear filtering at a sprite's edge (fractional positions, scaling) blends with
transparent black, never with a neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from node.render.types import Sprite


@dataclass(frozen=True)
class AtlasRect:
    """Where one sprite lies in the atlas, in texels; uv as fractions of the atlas."""

    x: int
    y: int
    width: int
    height: int
    uv: tuple[float, float, float, float]  # u0, v0, u1, v1; v0 is the sprite's top row


@dataclass(frozen=True, eq=False)
class Atlas:
    rgba: np.ndarray  # (height, width, 4) uint8 premultiplied, top row first
    rects: dict[str, AtlasRect]

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgba.shape[1]), int(self.rgba.shape[0])


def pack(sprites: dict[str, Sprite], max_size: int, pad: int = 2) -> Atlas:
    """Pack `sprites` into one atlas at most `max_size` texels a side.

    Tallest first onto shelves of a width near the square root of the total area,
    which stays within a few tens of percent of optimal for layered character art.
    """
    for name, sprite in sprites.items():
        rgba = sprite.rgba
        if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
            raise ValueError(
                f"Sprite {name!r}: expected (h, w, 4) uint8 premultiplied RGBA. "
                f"Got {rgba.shape} {rgba.dtype}"
            )
    order = sorted(sprites, key=lambda n: (-sprites[n].rgba.shape[0], n))
    cells = {n: (sprites[n].size[0] + 2 * pad, sprites[n].size[1] + 2 * pad) for n in order}
    area = sum(w * h for w, h in cells.values())
    widest = max((w for w, _ in cells.values()), default=1)
    shelf_width = min(max_size, max(widest, int(np.ceil(np.sqrt(area)))))
    if widest > max_size:
        raise ValueError(f"A sprite is wider than the largest texture ({widest} > {max_size} px)")

    origins: dict[str, tuple[int, int]] = {}
    x = y = shelf_height = 0
    for name in order:
        w, h = cells[name]
        if x + w > shelf_width:
            x, y, shelf_height = 0, y + shelf_height, 0
        origins[name] = (x, y)
        x += w
        shelf_height = max(shelf_height, h)
    width, height = max(shelf_width, 1), max(y + shelf_height, 1)
    if height > max_size:
        raise ValueError(f"Sprites do not fit one {max_size}x{max_size} atlas (need {width}x{height})")

    rgba = np.zeros((height, width, 4), np.uint8)
    rects: dict[str, AtlasRect] = {}
    for name, (cx, cy) in origins.items():
        sw, sh = sprites[name].size
        sx, sy = cx + pad, cy + pad
        rgba[sy : sy + sh, sx : sx + sw] = sprites[name].rgba
        uv = (sx / width, sy / height, (sx + sw) / width, (sy + sh) / height)
        rects[name] = AtlasRect(sx, sy, sw, sh, uv)
    return Atlas(rgba, rects)
