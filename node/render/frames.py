"""The frame loops: a scene's frames through a compositor into an encoder, one at a time.

Nothing here holds more than a frame or two, so memory does not grow with the
video's length. Each loop returns how many frames it drew and where its time
went (compositing vs encoding).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from node.render.cpu import CpuCompositor
from node.render.damage import Rect
from node.render.encode import VideoEncoder

if TYPE_CHECKING:  # the scene builder needs cairo, which GPU bench machines lack
    from node.render.scene import Scene

Progress = Callable[[float], None] | None
PALETTE_SAMPLES = 8  # frames the GIF palette is cut from, spread over the render


@dataclass
class LoopStats:
    frames: int = 0
    unique: int = 0  # frames drawn at all (that differed from what their slot showed)
    render_s: float = 0.0
    encode_s: float = 0.0


def _report(progress: Progress, i: int, n: int) -> None:
    if progress is not None and (i % 10 == 0 or i == n - 1):
        progress((i + 1) / n)


class _Drawer(Protocol):
    def begin(self, i: int, slot: int) -> Any:
        """Start drawing frame `i` into encoder frame `slot`; a handle for `finish`."""

    def finish(self, handle: Any) -> bool:
        """Complete a frame `begin` started; whether any pixel changed."""


def _encode_frames(scene: Scene, encoder: VideoEncoder, drawer: _Drawer,
                   progress: Progress) -> LoopStats:
    """Draw frames in this thread and encode them in another, through the encoder's
    frame slots.

    numpy, the GL driver's copies and PyAV's encoder release the GIL, so drawing
    and encoding overlap. A slot is drawn again only once encoded, and is brought
    up from the frame it held before. One frame may be in flight (GL's
    asynchronous read-back) while the next is begun.
    """
    stats = LoopStats()
    n = scene.n_frames
    free: queue.Queue[int | None] = queue.Queue()
    ready: queue.Queue[int | None] = queue.Queue()
    for slot in range(encoder.slots):
        free.put(slot)
    failure: list[BaseException] = []
    clock = time.perf_counter

    def encode() -> None:
        try:
            while (slot := ready.get()) is not None:
                t0 = clock()
                encoder.write_frame(slot)
                stats.encode_s += clock() - t0
                free.put(slot)
        except BaseException as exc:  # raised again by the drawing thread
            failure.append(exc)
            free.put(None)

    worker = threading.Thread(target=encode, name="toonz-encode", daemon=True)
    worker.start()
    try:
        pending = None
        for i in range(n + 1):
            slot = free.get() if i < n else None
            if failure:
                raise failure[0]
            t0 = clock()
            handle = drawer.begin(i, slot) if i < n else None
            if pending is not None:
                stats.unique += drawer.finish(pending[0])
                ready.put(pending[1])
            pending = (handle, slot)
            stats.render_s += clock() - t0
            if i:
                _report(progress, i - 1, n)
    finally:
        ready.put(None)
        worker.join()
    if failure:
        raise failure[0]
    stats.frames = n
    return stats


class _CpuDrawer:
    """Composites each frame once, into the compositor's own buffer; a slot then gets
    copies of the rectangles that changed since it was last drawn (cheaper than
    compositing them again)."""

    def __init__(self, scene: Scene, encoder: VideoEncoder, compositor: CpuCompositor) -> None:
        self.scene, self.encoder, self.compositor = scene, encoder, compositor
        whole = (0, 0, scene.art.width, scene.art.height)
        self.stale: list[list[Rect]] = [[whole] for _ in range(encoder.slots)]

    def begin(self, i: int, slot: int) -> bool:
        current = self.compositor.render_yuv(self.scene.frame(i))
        rect = self.compositor.last_rect
        if rect is not None:
            for rects in self.stale:
                rects.append(rect)
        planes = self.encoder.frame_planes(slot)
        for x0, y0, x1, y1 in self.stale[slot]:
            chroma = np.s_[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
            planes[0][y0:y1, x0:x1] = current[0][y0:y1, x0:x1]
            planes[1][chroma] = current[1][chroma]
            planes[2][chroma] = current[2][chroma]
        self.stale[slot].clear()
        return rect is not None

    def finish(self, handle: bool) -> bool:
        return handle


class _GlDrawer:
    def __init__(self, scene: Scene, encoder: VideoEncoder, compositor) -> None:
        self.scene, self.encoder, self.compositor = scene, encoder, compositor
        # Per slot: the GPU redraws whole frames anyway; only the read-back is damage.
        self.targets = [compositor.yuv_target() for _ in range(encoder.slots)]

    def begin(self, i: int, slot: int):
        target = self.targets[slot]
        target.planes = self.encoder.frame_planes(slot)
        return self.compositor.submit(self.scene.frame(i), target), target

    def finish(self, handle) -> bool:
        ticket, target = handle
        if ticket is None:
            return False
        self.compositor.complete(ticket, target)
        return True


# Frames up to this many pixels are drawn and encoded on one thread. There a frame's
# drawing is cheaper than handing it to an encoding thread and back (the encoder's own
# threads still run beside the drawing). On two cores, 30 s renders, with the compiled
# loop (node/render/fused.py) drawing: one thread 6% faster at 360p, 1% at 720p and
# 1080p with 2-3% less CPU; at 4K the drawing thread 1% faster.
ONE_THREAD_MAX_PIXELS = 1920 * 1080


def encode_cpu(scene: Scene, encoder: VideoEncoder, compositor: CpuCompositor,
               progress: Progress = None, threads: bool | None = None) -> LoopStats:
    """Each frame's damage composited on the CPU, straight into the encoder's frame.

    `threads` (None: by frame size, see ONE_THREAD_MAX_PIXELS) draws in this thread
    while another encodes, through the encoder's frame slots."""
    if threads is None:
        threads = scene.art.width * scene.art.height > ONE_THREAD_MAX_PIXELS
    if threads:
        return _encode_frames(scene, encoder, _CpuDrawer(scene, encoder, compositor), progress)
    return _encode_one_thread(scene, encoder, compositor, progress)


def _encode_one_thread(scene: Scene, encoder: VideoEncoder, compositor: CpuCompositor,
                       progress: Progress) -> LoopStats:
    """Draw each frame's damage into the encoder's one frame, then encode it."""
    stats = LoopStats()
    clock = time.perf_counter
    target = compositor.yuv_target()  # pixels unknown: the first frame is drawn whole
    n = scene.n_frames
    for i in range(n):
        t0 = clock()
        target.planes = encoder.frame_planes(0)  # fetched again every frame (its contract)
        stats.unique += compositor.draw(scene.frame(i), target) is not None
        t1 = clock()
        encoder.write_frame(0)
        stats.render_s += t1 - t0
        stats.encode_s += clock() - t1
        _report(progress, i, n)
    stats.frames = n
    return stats


def encode_gl(scene: Scene, encoder: VideoEncoder, compositor, progress: Progress = None) -> LoopStats:
    """Each frame drawn by GL (node.render.gl.GLCompositor); its damage read back
    asynchronously, straight into the encoder's frame, while the GPU draws the next."""
    return _encode_frames(scene, encoder, _GlDrawer(scene, encoder, compositor), progress)


def encode_gif(scene: Scene, path: Path, compositor: CpuCompositor,
               progress: Progress = None) -> LoopStats:
    """An animated GIF with one palette cut from a few of the render's frames."""
    from node.render.gif import GifEncoder, IndexTarget, PaletteMap, scene_palette

    n = scene.n_frames
    samples = sorted({round(k * (n - 1) / max(1, PALETTE_SAMPLES - 1)) for k in range(PALETTE_SAMPLES)})
    crops = []
    for i in samples:
        placements = scene.frame(i)
        x0, y0, x1, y1 = compositor.bounds(placements)
        crops.append(compositor.render_rgba(placements)[y0:y1, x0:x1])
    palette = scene_palette(scene.art.background, crops,
                            [s.rgba for s in scene.art.sprites.values()])
    target = IndexTarget(PaletteMap(palette))
    stats = LoopStats()
    clock = time.perf_counter
    with GifEncoder(path, scene.art.width, scene.art.height, round(scene.fps), palette) as enc:
        for i in range(n):
            t0 = clock()
            target.index = enc.frame_indices()
            if compositor.draw(scene.frame(i), target) is not None:
                stats.unique += 1
            t1 = clock()
            enc.write_frame()
            t2 = clock()
            stats.render_s += t1 - t0
            stats.encode_s += t2 - t1
            _report(progress, i, n)
    stats.frames = n
    return stats


def write_poster(rgba: np.ndarray, path: Path) -> Path:
    """Save an (H, W, 4) frame as an opaque RGB PNG.

    FFmpeg's PNG encoder, Paeth prediction, compression level 1: a 4K poster in
    0.045 s where Pillow's adaptive filtering took 0.12 s even uncompressed, and
    flat art still compresses well (551 KB against Pillow's 537 KB).
    """
    import av

    h, w = rgba.shape[:2]
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = w, h, "rgb24"
    codec.time_base = Fraction(1, 1)
    codec.options = {"pred": "paeth", "compression_level": "1"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba[..., :3]), format="rgb24")
    packets = codec.encode(frame) + codec.encode(None)
    Path(path).write_bytes(b"".join(bytes(p) for p in packets))
    return path
