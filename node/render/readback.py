"""Asynchronous read-back of YUV rectangles through a ring of pixel buffer objects.

`glReadPixels` into client memory waits for the GPU to finish the frame and for
the transfer; into a buffer object it only queues the copy. So a frame's planes
are read into one of `depth` buffers and fetched later, while the GPU works on
the frames after it: the CPU never waits on a frame it has just drawn. Only the
damage rectangle is read (a talking character changes a few percent of the
pixels), packed Y rows, then U, then V.
"""

from __future__ import annotations

from dataclasses import dataclass

import moderngl
import numpy as np

from node.render.damage import Rect


@dataclass(frozen=True)
class Ticket:
    """One queued read: which buffer, which generation of it, which rectangle."""

    slot: int
    generation: int
    rect: Rect


class PboRing:
    """`depth` buffers, each able to hold one whole I420 frame of `width` x `height`."""

    def __init__(self, ctx: moderngl.Context, width: int, height: int, y_pack: int,
                 c_pack: int, depth: int = 3) -> None:
        self._frame_bytes = width * height * 3 // 2
        self._buffers = [ctx.buffer(reserve=self._frame_bytes, dynamic=True) for _ in range(depth)]
        self._generation = [0] * depth
        self._next = 0
        self._y_pack, self._c_pack = y_pack, c_pack
        self._staging = np.empty(self._frame_bytes, np.uint8)  # reused: fresh memory is slow

    def read(self, y_fbo: moderngl.Framebuffer, uv_fbo: moderngl.Framebuffer, rect: Rect) -> Ticket:
        """Queue the copy of `rect` of the Y target and the U, V targets; returns at once."""
        slot = self._next
        self._next = (slot + 1) % len(self._buffers)
        self._generation[slot] += 1
        buf = self._buffers[slot]
        x0, y0, x1, y1 = rect
        w, h = x1 - x0, y1 - y0
        yp, cp = self._y_pack, self._c_pack
        y_fbo.read_into(buf, viewport=(x0 // yp, y0, w // yp, h), components=yp, alignment=1)
        chroma = (x0 // 2 // cp, y0 // 2, w // 2 // cp, h // 2)
        c_bytes = (w // 2) * (h // 2)
        for k in (0, 1):
            uv_fbo.read_into(buf, viewport=chroma, components=cp, attachment=k, alignment=1,
                             write_offset=w * h + k * c_bytes)
        return Ticket(slot, self._generation[slot], rect)

    def fetch(self, ticket: Ticket, planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Copy a queued read into `planes` (Y, U, V; views are fine), waiting if need be."""
        if self._generation[ticket.slot] != ticket.generation:
            raise RuntimeError(
                f"read-back buffer {ticket.slot} was reused before it was fetched: fetch tickets "
                f"in order, at most {len(self._buffers)} outstanding"
            )
        x0, y0, x1, y1 = ticket.rect
        w, h = x1 - x0, y1 - y0
        y_bytes, c_bytes = w * h, (w // 2) * (h // 2)
        data = self._staging[: y_bytes + 2 * c_bytes]
        self._buffers[ticket.slot].read_into(data, size=len(data))
        y, u, v = planes
        y[y0:y1, x0:x1] = data[:y_bytes].reshape(h, w)
        chroma = np.s_[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
        u[chroma] = data[y_bytes : y_bytes + c_bytes].reshape(h // 2, w // 2)
        v[chroma] = data[y_bytes + c_bytes :].reshape(h // 2, w // 2)

    def release(self) -> None:
        for buf in self._buffers:
            buf.release()
        self._buffers = []
