"""The data handed from the scene builder to a compositor (GL or the torch reference).

All sizes and positions are in output pixels; the origin is the top-left corner of
the frame and y grows downwards. Colours are 8-bit RGBA with premultiplied alpha.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


@dataclass(frozen=True, eq=False)
class Sprite:
    """One rasterized layer: an (h, w, 4) uint8 premultiplied RGBA image."""

    name: str
    rgba: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgba.shape[1]), int(self.rgba.shape[0])


class Placement(NamedTuple):
    """One sprite drawn in one frame, top-left corner at (x, y), scaled by `scale`.

    A named tuple, not a dataclass: a frame has some forty of these and the
    compositors compare and hash them every frame; tuples do that in C.
    """

    sprite: str
    x: float
    y: float
    opacity: float = 1.0
    scale: float = 1.0


@dataclass(frozen=True, eq=False)
class SceneArt:
    """Everything a compositor needs once per render: background and sprites."""

    width: int
    height: int
    background: np.ndarray  # (height, width, 4) uint8 premultiplied, opaque
    sprites: dict[str, Sprite] = field(default_factory=dict)


DrawList = tuple[Placement, ...]


def check_art(art: SceneArt) -> None:
    """Raise ValueError unless `art` can become YUV 4:2:0 frames (even size, RGBA background)."""
    width, height = art.width, art.height
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(
            f"Frame width and height must be positive and even for YUV 4:2:0. Got {width}x{height}")
    bg = art.background
    if bg.shape != (height, width, 4) or bg.dtype != np.uint8:
        raise ValueError(f"Background must be ({height}, {width}, 4) uint8. Got {bg.shape} {bg.dtype}")
