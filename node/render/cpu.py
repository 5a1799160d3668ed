"""The CPU compositor: premultiplied "over" in integer arithmetic, redrawing only what changed.

On a node without a GPU, llvmpipe runs GL on the CPU anyway and holds the GIL
while it does (DESIGN.md); this backend does the same work where it is needed:

- the background is converted to YUV once, and a frame is the previous frame
  with its damage region redrawn: the union of the rectangles of the
  placements that changed (old and new positions), rounded out to even pixels
  so that its chroma blocks are whole;
- inside that region the background and every placement that overlaps it are
  blended in planar uint16 with GL's arithmetic (one rounding to 8 bits per
  blend: src + round(dst * (255 - a) / 255)), then converted to YUV 4:2:0;
- whole-pixel, unscaled, opaque placements (the scene builder's) take an exact
  integer path; others are resampled by the torch reference (kernels.composite);
- into YUV targets (the encoder's frames) a region of exact placements is drawn by
  a compiled loop (node/render/fused.py: the same arithmetic in one pass, 3.6-4x
  faster); numpy draws the rest (RGB for the poster, a GIF's palette indices,
  regions with resampled placements) and everything where numba is missing.

Output: bit-identical for the same inputs, whatever the order of damage. For
the integer path, RGB within 1 code of GL on llvmpipe (whose blend rounds in
fixed point) and of the torch reference (which rounds once), YUV within 1 code of
GL and of float64 BT.709; resampled placements within 2 codes (4 where scaled,
as GL against the reference). Tests: tests/test_render_cpu.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from node.render import yuv
from node.render.damage import PlaneTarget, Rect, damage, damage_rects, placement_bounds, union
from node.render.types import Placement, SceneArt, check_art

try:  # the compiled inner loop; without numba (the GPU bench machines) numpy draws
    from node.render.fused import LAYER_FIELDS, draw_yuv
except ImportError:  # pragma: no cover - numba is a node dependency
    LAYER_FIELDS, draw_yuv = 0, None

# A region is composited and converted in strips of at most this many pixels (and
# at least two rows): a strip's planes stay in the core's cache through the blends
# and the conversion. Regions of 1.5 Mpx at 4K went from 4.4 to 3.2 ns a pixel in
# strips of 2^18 (and the work buffers shrank from 250 MB to a few).
STRIP_PIXELS = 1 << 18
# Placements whose rectangles are remembered: a frame's forty placements are looked
# up for every region drawn. Cleared when full, so memory stays flat.
BOUNDS_CACHE = 4096


class _Src:
    """One sprite in blend-ready form: planar RGB and 255 - alpha, both uint16."""

    def __init__(self, rgba: np.ndarray) -> None:
        planar = rgba.transpose(2, 0, 1).astype(np.uint16)
        self.rgb = np.ascontiguousarray(planar[:3])
        self.inv = 255 - planar[3]
        self.width, self.height = int(rgba.shape[1]), int(rgba.shape[0])


def _exact(p: Placement) -> bool:
    return p.scale == 1.0 and p.opacity == 1.0 and float(p.x).is_integer() \
        and float(p.y).is_integer()


def _blend(dst: np.ndarray, rgb: np.ndarray, inv: np.ndarray, tmp: np.ndarray) -> None:
    """dst = rgb + round(dst * inv / 255), in place; all planar uint16, 0..255.

    round(x / 255) for 0 <= x <= 255 * 255 is (t + (t >> 8)) >> 8 with t = x + 128.
    `tmp` (dst's shape) takes the intermediate: no allocation per blend, which kept
    the heap (and the resident memory) from drifting.
    """
    dst *= inv
    dst += 128
    np.right_shift(dst, 8, out=tmp)
    dst += tmp
    dst >>= 8
    dst += rgb


class Target(Protocol):
    """Pixels that show a compositor's frames: what they show, and how to write a region.

    `shows` is the draw list the pixels hold (None: unknown, so the next frame is
    written whole); the compositor keeps it current.
    """

    shows: tuple[Placement, ...] | None

    def write(self, rect: Rect, rgb: np.ndarray) -> None:
        """Store planar (3, h, w) uint16 RGB as the pixels of `rect`."""


class YuvTarget(PlaneTarget):
    """YUV 4:2:0 planes as a `Target`: RGB regions converted as they are written."""

    def __init__(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                 scratch: yuv.Scratch) -> None:
        super().__init__(planes)
        self._scratch = scratch

    def write(self, rect: Rect, rgb: np.ndarray) -> None:
        x0, y0, x1, y1 = rect
        y, u, v = self.planes
        chroma = np.s_[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
        yuv.convert_into(rgb, y[y0:y1, x0:x1], u[chroma], v[chroma], self._scratch)


class CpuCompositor:
    """Renders frames of one `SceneArt` on the CPU, redrawing only their damage.

    `render_yuv(placements)` returns YUV 4:2:0 planes of a buffer reused by the
    next call, like GLCompositor's. `draw(placements, target)` brings any
    `Target` (an encoder's frame: `yuv_target()`; a GIF's palette indices) up to
    `placements`, writing only what changed since the frame it shows.
    """

    def __init__(self, art: SceneArt) -> None:
        check_art(art)
        width, height, bg = art.width, art.height, art.background
        self.width, self.height = width, height
        self._art = art
        self._bg = np.ascontiguousarray(bg[..., :3].transpose(2, 0, 1), dtype=np.uint16)
        self._srcs = {name: _Src(s.rgba) for name, s in art.sprites.items()}
        self._atlas, self._offsets = _atlas(art)
        self._rows = np.empty((3, 2, width), np.int32)
        # Flat, so that a region's (3, h, w) view of it is contiguous: numpy was 2x
        # faster on it than on a region of a (3, H, W) array. Strip-sized.
        strip = max(STRIP_PIXELS, 2 * width)
        self._work = np.empty(3 * strip, np.uint16)
        self._tmp = np.empty(3 * strip, np.uint16)
        self._scratch = yuv.Scratch(strip, 1)
        y_size, c_size = width * height, (width // 2) * (height // 2)
        self._i420 = np.empty(y_size + 2 * c_size, np.uint8)
        self._own = self.yuv_target((
            self._i420[:y_size].reshape(height, width),
            self._i420[y_size : y_size + c_size].reshape(height // 2, width // 2),
            self._i420[y_size + c_size :].reshape(height // 2, width // 2),
        ))
        self._boxes: dict[Placement, Rect] = {}
        self.pixels_drawn = 0  # damage area summed over frames: what the work scaled with
        self.last_rect: Rect | None = None  # what the last render_yuv redrew

    @property
    def i420(self) -> np.ndarray:
        """The last `render_yuv` output as one (height * 3 // 2, width) I420 array."""
        return self._i420.reshape(self.height * 3 // 2, self.width)

    def yuv_target(
        self, planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    ) -> YuvTarget:
        """A target for Y (H, W), U and V (H/2, W/2) planes whose pixels are unknown yet."""
        return YuvTarget(planes, self._scratch)

    def render_yuv(
        self, placements: Sequence[Placement]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One frame as BT.709 limited-range Y (H, W), U and V (H/2, W/2) uint8 planes."""
        self.last_rect = self.draw(placements, self._own)
        return self._own.planes

    def draw(self, placements: Sequence[Placement], target: Target) -> Rect | None:
        """Bring `target` up to `placements`; returns the rectangle bounding what was
        written (the regions that changed, composited apart), if anything was."""
        placements = tuple(placements)
        for p in placements:
            if p.sprite not in self._srcs:
                raise KeyError(f"Placement names an unknown sprite {p.sprite!r}")
        rects = damage_rects(target.shows, placements, self._bounds, (self.width, self.height))
        fused = draw_yuv is not None and isinstance(target, YuvTarget)
        for rect in rects:
            layers = self._layers(rect, placements) if fused else None
            if layers is not None:
                y, u, v = target.planes
                draw_yuv(self._bg, self._atlas, layers, *rect, y, u, v, self._rows)
            else:
                for strip in _strips(rect):
                    target.write(strip, self._composite(strip, placements))
            x0, y0, x1, y1 = rect
            self.pixels_drawn += (x1 - x0) * (y1 - y0)
        target.shows = placements
        return union(rects) if rects else None

    def render_rgba(self, placements: Sequence[Placement]) -> np.ndarray:
        """One whole frame as a new (H, W, 4) uint8 RGBA array (alpha 255)."""
        placements = tuple(placements)
        out = np.full((self.height, self.width, 4), 255, np.uint8)
        for x0, y0, x1, y1 in _strips((0, 0, self.width, self.height)):
            out[y0:y1, :, :3] = self._composite((x0, y0, x1, y1), placements).transpose(1, 2, 0)
        return out

    def damage(self, old: tuple[Placement, ...] | None,
               new: tuple[Placement, ...]) -> Rect | None:
        """The even-aligned rectangle that differs between two frames; None if none does."""
        return damage(old, new, self._bounds, (self.width, self.height))

    def bounds(self, placements: Sequence[Placement]) -> Rect:
        """The rectangle covering every placement, clipped to the frame."""
        boxes = [self._bounds(p) for p in placements] or [(0, 0, 0, 0)]
        return (max(0, min(b[0] for b in boxes)), max(0, min(b[1] for b in boxes)),
                min(self.width, max(b[2] for b in boxes)), min(self.height, max(b[3] for b in boxes)))

    def _bounds(self, p: Placement) -> Rect:
        box = self._boxes.get(p)
        if box is None:
            if len(self._boxes) >= BOUNDS_CACHE:
                self._boxes.clear()
            src = self._srcs[p.sprite]
            box = self._boxes[p] = placement_bounds(p, src.width, src.height)
        return box

    def _layers(self, rect: Rect, placements: tuple[Placement, ...]) -> np.ndarray | None:
        """The compiled path's table of the placements over `rect` (node/render/fused.py);
        None when one of them needs resampling (the numpy path draws that region)."""
        offsets, rows = self._offsets, []
        for p, window in self._covering(rect, placements):
            if not _exact(p):
                return None
            rows.append((*offsets[p.sprite], *window, int(p.x), int(p.y)))
        return np.array(rows, np.int64).reshape(len(rows), LAYER_FIELDS)

    def _covering(self, rect: Rect, placements: tuple[Placement, ...]):
        """Each placement over `rect`, in draw order, with the part of `rect` it covers."""
        x0, y0, x1, y1 = rect
        bounds = self._bounds
        for p in placements:
            bx0, by0, bx1, by1 = bounds(p)
            if bx0 >= x1 or bx1 <= x0 or by0 >= y1 or by1 <= y0:
                continue
            # Comparisons rather than min()/max(): this runs for every placement of
            # every region drawn.
            yield p, (bx0 if bx0 > x0 else x0, by0 if by0 > y0 else y0,
                      bx1 if bx1 < x1 else x1, by1 if by1 < y1 else y1)

    def _composite(self, rect: Rect, placements: tuple[Placement, ...]) -> np.ndarray:
        """Planar uint16 RGB of `rect`: the background, then every placement over it."""
        x0, y0, x1, y1 = rect
        size = 3 * (y1 - y0) * (x1 - x0)
        dst = self._work[:size].reshape(3, y1 - y0, x1 - x0)
        tmp_region = self._tmp[:size].reshape(3, y1 - y0, x1 - x0)
        dst[...] = self._bg[:, y0:y1, x0:x1]
        for p, (cx0, cy0, cx1, cy1) in self._covering(rect, placements):
            window_out = np.s_[:, cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
            out, tmp = dst[window_out], tmp_region[window_out]
            if _exact(p):
                src = self._srcs[p.sprite]
                sx, sy = cx0 - int(p.x), cy0 - int(p.y)
                window = np.s_[sy : sy + cy1 - cy0, sx : sx + cx1 - cx0]
                _blend(out, src.rgb[(slice(None), *window)], src.inv[window], tmp)
            else:
                rgb, inv = self._resampled(p, (cx0, cy0, cx1, cy1))
                _blend(out, rgb, inv, tmp)
        return dst

    def _resampled(self, p: Placement, rect: Rect) -> tuple[np.ndarray, np.ndarray]:
        """A scaled, fractional or translucent placement sampled as GL does (bilinear)."""
        import torch  # only for art the scene builder does not make: keep it off the fast path

        from kernels.composite import resample
        x0, y0, x1, y1 = rect
        sprite = torch.from_numpy(np.ascontiguousarray(self._art.sprites[p.sprite].rgba))
        patch = resample(sprite.to(torch.float32) / 255.0, p, x0, y0, x1, y1) * p.opacity
        codes = torch.floor(patch * 255.0 + 0.5).clamp(0, 255).to(torch.int32).numpy()
        planar = codes.transpose(2, 0, 1).astype(np.uint16)
        return planar[:3], 255 - planar[3]


def _atlas(art: SceneArt) -> tuple[np.ndarray, dict[str, tuple[int, int, int]]]:
    """Every sprite as four planes (r, g, b, 255 - alpha), one sprite after another;
    each sprite's (offset, width, plane size) in it."""
    offsets, parts, at = {}, [], 0
    for name, sprite in art.sprites.items():
        rgba = sprite.rgba
        part = np.empty((4, *rgba.shape[:2]), np.uint8)
        part[:3] = rgba[..., :3].transpose(2, 0, 1)
        np.subtract(255, rgba[..., 3], out=part[3])
        offsets[name] = (at, int(rgba.shape[1]), int(rgba.shape[0] * rgba.shape[1]))
        parts.append(part.reshape(-1))
        at += part.size
    return (np.concatenate(parts) if parts else np.zeros(4, np.uint8)), offsets


def _strips(rect: Rect) -> list[Rect]:
    """`rect` as horizontal strips of at most STRIP_PIXELS (an even number of rows,
    at least two, so chroma blocks stay whole)."""
    x0, y0, x1, y1 = rect
    rows = max(2, STRIP_PIXELS // max(1, x1 - x0) & -2)
    return [(x0, y, x1, min(y1, y + rows)) for y in range(y0, y1, rows)]
