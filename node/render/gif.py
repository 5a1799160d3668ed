"""Animated GIF output: one palette for the whole render, frames as palette indices.

The palette is the scene's own: a median cut (Pillow) over a few composited
frames, so the flat colours of the art come out exact and antialiased edges take
their nearest entry. Colours map to indices through a lookup table over all
2^24 RGB values, filled lazily: a frame's damage region looks up what it has seen
before and searches the palette only for new colours (after the first frames,
none). The last entry is transparent, which lets FFmpeg's GIF encoder store
unchanged pixels as transparent (its default "transdiff"): a talking character
over a still background costs little per frame.

Delays are whole centiseconds: frame i is stamped round(100 i / fps), so 30 fps
plays as 3, 3, 4 cs delays and the duration comes out exact.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

log = logging.getLogger(__name__)

COLOURS = 255  # opaque entries; index 255 is the transparent one
TRANSPARENT = 255
_UNKNOWN = 255  # in the lookup table: not looked up yet (never a nearest colour)
_TIME_BASE = Fraction(1, 100)
KMEANS_PASSES = 4
# Ordered (4x4 Bayer) dithering of +-3 levels: smooth gradients without bands, while
# flat colours that are palette entries stay themselves (entries lie further apart).
DITHER_LEVELS = 6
_BAYER = np.round((np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]])
                   - 7.5) * DITHER_LEVELS / 16).astype(np.int16)


def build_palette(images: list[np.ndarray]) -> np.ndarray:
    """A (255, 3) uint8 palette for (h, w, 3 or 4) uint8 images: median cut, then k-means.

    The k-means passes keep small areas of their own colour (a shadow on the neck)
    from being pulled onto a distant entry that median cut left them.
    """
    from PIL import Image

    pixels = np.concatenate([img[..., :3].reshape(-1, 3) for img in images])
    image = Image.fromarray(pixels.reshape(-1, 1, 3))
    quantized = image.quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT, kmeans=KMEANS_PASSES,
                               dither=Image.Dither.NONE)
    palette = np.array(quantized.getpalette()[: 3 * COLOURS], np.uint8).reshape(-1, 3)
    out = np.zeros((COLOURS, 3), np.uint8)
    out[: len(palette)] = palette  # fewer colours than entries: the rest repeat black
    return out


class PaletteMap:
    """Nearest palette index of planar RGB, through a lazily filled 2^24 lookup table."""

    def __init__(self, palette: np.ndarray) -> None:
        if palette.shape != (COLOURS, 3) or palette.dtype != np.uint8:
            raise ValueError(f"Expected a ({COLOURS}, 3) uint8 palette. Got {palette.shape} {palette.dtype}")
        self.palette = palette
        self._table = np.full(1 << 24, _UNKNOWN, np.uint8)
        self._colours = palette.astype(np.int32)

    def indices(self, rgb: np.ndarray) -> np.ndarray:
        """(h, w) uint8 indices of planar (3, h, w) uint16 RGB in 0..255."""
        key = rgb[0].astype(np.uint32) << 16
        key |= rgb[1].astype(np.uint32) << 8
        key |= rgb[2]
        out = self._table[key]
        missing = out == _UNKNOWN
        if missing.any():
            new = np.unique(key[missing])
            self._table[new] = self._nearest(new)
            out[missing] = self._table[key[missing]]
        return out

    def _nearest(self, keys: np.ndarray) -> np.ndarray:
        colours = np.stack([(keys >> s) & 0xFF for s in (16, 8, 0)], axis=1).astype(np.int32)
        best = np.empty(len(keys), np.uint8)
        for start in range(0, len(keys), 4096):  # (4096, 255) distances at a time
            chunk = colours[start : start + 4096]
            dist = ((chunk[:, None, :] - self._colours[None, :, :]) ** 2).sum(axis=2)
            best[start : start + 4096] = dist.argmin(axis=1)
        return best


class IndexTarget:
    """A GIF frame's palette indices as a compositor target (node.render.cpu.Target)."""

    def __init__(self, palette_map: PaletteMap, index: np.ndarray | None = None) -> None:
        self.map = palette_map
        self.index = index  # (H, W) uint8; swapped per frame for the encoder's
        self.shows = None

    def write(self, rect: tuple[int, int, int, int], rgb: np.ndarray) -> None:
        x0, y0, x1, y1 = rect
        # The pattern is tied to frame coordinates, so unchanged pixels map the same
        # way in every frame and the encoder still finds them unchanged.
        reps = ((y1 - y0) // 4 + 2, (x1 - x0) // 4 + 2)
        offset = np.tile(_BAYER, reps)[y0 % 4 : y0 % 4 + y1 - y0, x0 % 4 : x0 % 4 + x1 - x0]
        dithered = np.clip(rgb.astype(np.int16) + offset, 0, 255).astype(np.uint16)
        self.index[y0:y1, x0:x1] = self.map.indices(dithered)


def scene_palette(background: np.ndarray, characters: list[np.ndarray],
                  sprites: list[np.ndarray] = ()) -> np.ndarray:
    """The palette of a render: its background, the character's regions of a few
    frames, and the opaque pixels of every sprite.

    The background is sampled every 4th pixel and the character at every pixel, so
    that the character's colours weigh as much as the large, smooth background's;
    the sprites bring the colours of mouths and eyes the sampled frames missed (a
    tongue took a brown entry without them).
    """
    opaque = [s[s[..., 3] == 255][None] for s in sprites]  # premultiplied = straight here
    return build_palette([background[::4, ::4], *characters, *opaque])


class GifEncoder:
    """Writes palette-index frames to an animated GIF at `path` (no audio).

    `frame_indices()` gives the reused frame's (H, W) index plane holding the
    previous frame; write what changed, then `write_frame()`. Close (or use as a
    context manager) to flush and finish the file.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: int,
                 palette: np.ndarray) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"Width and height must be positive. Got {width}x{height}")
        if int(fps) != fps or not 0 < fps <= 100:
            raise ValueError(f"GIF fps must be an integer in 1..100. Got {fps!r}")
        self.width, self.height, self.fps = width, height, int(fps)
        self.frames_written = 0
        self._closed = False
        self._container = av.open(str(path), "w", format="gif")
        try:
            stream = self._container.add_stream("gif", rate=self.fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "pal8"
            stream.time_base = stream.codec_context.time_base = _TIME_BASE
            self._stream = stream
        except Exception:
            self._container.close()
            raise
        self._frame = av.VideoFrame(width, height, "pal8")
        entries = np.zeros(256, np.uint32)  # 0xAARRGGBB; entry 255 stays transparent
        p = palette.astype(np.uint32)
        entries[:COLOURS] = 0xFF000000 | p[:, 0] << 16 | p[:, 1] << 8 | p[:, 2]
        np.frombuffer(self._frame.planes[1], np.uint32)[:] = entries

    def frame_indices(self) -> np.ndarray:
        """The writable (H, W) index plane of the next frame (the previous frame's pixels)."""
        self._frame.make_writable()
        plane = self._frame.planes[0]
        return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : self.width]

    def write_frame(self) -> None:
        if self._closed:
            raise RuntimeError("GifEncoder is closed")
        frame = self._frame
        frame.pts = round(self.frames_written * 100 / self.fps)
        frame.time_base = _TIME_BASE
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()

    def __enter__(self) -> GifEncoder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
