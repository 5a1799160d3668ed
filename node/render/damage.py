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
    rects = damage_rects(old, new, bounds, frame, align)
    return union(rects) if rects else None


def damage_rects(old: Sequence[Placement] | None, new: Sequence[Placement],
                 bounds: Callable[[Placement], Rect], frame: tuple[int, int],
                 align: tuple[int, int] = (2, 2)) -> list[Rect]:
    """`damage` as disjoint aligned rectangles: a mouth and a caption that change in
    the same frame are two small regions, not the large one spanning both."""
    width, height = frame
    if old is None:
        return [(0, 0, width, height)]
    if tuple(old) == tuple(new):
        return []
    if len(old) != len(new):
        changed = [*old, *new]
    else:
        changed = [p for a, b in zip(old, new) if a != b for p in (a, b)]
    ax, ay = align
    rects = set()  # a glyph that only changes colour has the same rectangle twice
    for b in map(bounds, changed):
        r = (max(0, b[0]) & -ax, max(0, b[1]) & -ay,
             min(width, -(-b[2] // ax) * ax), min(height, -(-b[3] // ay) * ay))
        if r[0] < r[2] and r[1] < r[3]:  # off screen changes nothing
            rects.add(r)
    return _merge(sorted(rects))


def union(rects: Sequence[Rect]) -> Rect:
    return (min(r[0] for r in rects), min(r[1] for r in rects),
            max(r[2] for r in rects), max(r[3] for r in rects))


def _area(r: Rect) -> int:
    return (r[2] - r[0]) * (r[3] - r[1])


def _merge(rects: list[Rect]) -> list[Rect]:
    """Merge rectangles that overlap, or whose union costs little more than both
    (each region composited has a fixed cost), until none do; the result is disjoint."""
    rects = list(rects)
    merged = True
    while merged and len(rects) > 1:
        merged = False
        for i in range(len(rects)):
            for j in range(i + 1, len(rects)):
                a, b = rects[i], rects[j]
                u = (a[0] if a[0] < b[0] else b[0], a[1] if a[1] < b[1] else b[1],
                     a[2] if a[2] > b[2] else b[2], a[3] if a[3] > b[3] else b[3])
                overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
                if overlap or _area(u) <= 1.25 * (_area(a) + _area(b)):
                    rects[i] = u
                    del rects[j]
                    merged = True
                    break
            if merged:
                break
    return rects


class PlaneTarget:
    """Y, U, V planes that show a frame: the pixels, and the draw list they hold.

    `shows` None means unknown (the next frame is written whole). `planes` may be
    swapped between frames (an encoder's frame) for planes with the same pixels.
    """

    def __init__(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        self.planes = planes
        self.shows: tuple[Placement, ...] | None = None
