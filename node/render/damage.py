"""What changed between two frames: the rectangle to redraw, for every compositor.

A frame is its draw list over a fixed background, so two frames differ only
inside the rectangles of the placements that differ (where each was and where it
is). Their union is rounded out to the compositor's alignment: even pixels for
whole 2x2 chroma blocks, wider where GL packs several pixels into one texel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from node.render.types import Placement

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1: half-open, in output pixels


def placement_bounds(p: Placement, width: int, height: int) -> Rect:
    """Output pixels whose centres lie inside a placed `width` x `height` sprite (GL's coverage)."""
    return (math.ceil(p.x - 0.5), math.ceil(p.y - 0.5),
            math.ceil(p.x + width * p.scale - 0.5), math.ceil(p.y + height * p.scale - 0.5))


def damage(old: Sequence[Placement] | None, new: Sequence[Placement],
           bounds: Callable[[Placement], Rect], frame: tuple[int, int],
           align: tuple[int, int] = (2, 2)) -> Rect | None:
    """The aligned rectangle of a `frame` (width, height) that differs; None if none does.

    `old` None means the pixels are unknown: the whole frame. Widths and heights
    must be multiples of `align` (x, y), which must be powers of two.
    """
    width, height = frame
    if old is None:
        return 0, 0, width, height
    if tuple(old) == tuple(new):
        return None
    if len(old) != len(new):
        changed = [*old, *new]
    else:
        changed = [p for a, b in zip(old, new) if a != b for p in (a, b)]
    boxes = [bounds(p) for p in changed]
    ax, ay = align
    x0 = max(0, min(b[0] for b in boxes)) & -ax
    y0 = max(0, min(b[1] for b in boxes)) & -ay
    x1 = min(width, -(-max(b[2] for b in boxes) // ax) * ax)
    y1 = min(height, -(-max(b[3] for b in boxes) // ay) * ay)
    if x0 >= x1 or y0 >= y1:
        return None  # everything that changed is off screen
    return x0, y0, x1, y1


class PlaneTarget:
    """Y, U, V planes that show a frame: the pixels, and the draw list they hold.

    `shows` None means unknown (the next frame is written whole). `planes` may be
    swapped between frames (an encoder's frame) for planes with the same pixels.
    """

    def __init__(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        self.planes = planes
        self.shows: tuple[Placement, ...] | None = None
