"""GPU compositing and RGB to YUV 4:2:0 through ModernGL on headless EGL.

One code path for the NVIDIA driver and Mesa's llvmpipe. Per frame: copy the
cached background into the frame (a blit, 4.6x faster than drawing a full-frame
quad on llvmpipe), draw every placement as one instanced draw call, convert to
YUV 4:2:0 in two shader passes, and read the planes back. `render_yuv` reads
whole planes, synchronously, into one buffer allocated once (fresh memory is
slow to touch on the development VMs); `submit` / `complete` draw, convert and
read only the damage rectangle (a scissor box), through pixel buffer objects, so
the GPU keeps drawing the next frames while a frame's pixels travel
(node/render/readback.py).

Row order: every pass maps output row r to framebuffer row r (see sprite.glsl),
so reads come back top row first without a flip or a copy.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from collections.abc import Callable, Sequence

import moderngl
import numpy as np

import shaders
from node.render.atlas import pack
from node.render.damage import PlaneTarget, Rect, damage, placement_bounds
from node.render.readback import PboRing, Ticket
from node.render.types import Placement, SceneArt, check_art

log = logging.getLogger(__name__)

EGL_DEVICE_ENV = "TOONZ_EGL_DEVICE"
MAX_EGL_DEVICES = 16  # probing stops at the first index the driver refuses
INSTANCE_FLOATS = 9  # dest x, y, w, h; uv u0, v0, u1, v1; opacity


@functools.cache
def _gl_flush() -> Callable[[], None] | None:
    """glFlush of the current context (ModernGL has none), from EGL; None if unavailable."""
    try:
        egl = ctypes.CDLL("libEGL.so.1")
    except OSError:
        return None
    egl.eglGetProcAddress.restype = ctypes.c_void_p
    egl.eglGetProcAddress.argtypes = [ctypes.c_char_p]
    address = egl.eglGetProcAddress(b"glFlush")
    return ctypes.CFUNCTYPE(None)(address) if address else None


def _egl_context(device_index: int) -> moderngl.Context:
    return moderngl.create_standalone_context(backend="egl", device_index=device_index)


def create_context(device_index: int | None = None) -> moderngl.Context:
    """A headless OpenGL 3.3+ context on EGL, preferring an NVIDIA device.

    `device_index` (or the TOONZ_EGL_DEVICE environment variable, read here, at
    call time) picks an EGL device by its index and skips the search. Otherwise
    device 0 is used unless it is not NVIDIA's and a later device is.
    """
    if device_index is None and os.environ.get(EGL_DEVICE_ENV, "").strip():
        raw = os.environ[EGL_DEVICE_ENV].strip()
        try:
            device_index = int(raw)
        except ValueError:
            raise ValueError(f"{EGL_DEVICE_ENV} must be an EGL device index. Got {raw!r}") from None
    if device_index is not None:
        ctx = _egl_context(device_index)
    else:
        ctx = _egl_context(0)
        if "NVIDIA" not in ctx.info["GL_VENDOR"]:
            for index in range(1, MAX_EGL_DEVICES):
                try:
                    other = _egl_context(index)
                except Exception:  # glcontext raises a bare Exception past the last device
                    break
                if "NVIDIA" in other.info["GL_VENDOR"]:
                    ctx.release()
                    ctx, device_index = other, index
                    break
                other.release()
    if ctx.version_code < 330:
        version = ctx.version_code
        ctx.release()
        raise RuntimeError(f"OpenGL 3.3 or later is needed. Got {version}")
    log.info(
        "EGL device %s: %s (%s, GL %s)",
        device_index or 0, ctx.info["GL_RENDERER"], ctx.info["GL_VENDOR"], ctx.version_code,
    )
    return ctx


def _pack_for(plane_width: int) -> int:
    """How many 8-bit codes one texel of a YUV target holds: 4, 2 or 1."""
    return next(pack for pack in (4, 2, 1) if plane_width % pack == 0)


class GLCompositor:
    """Renders frames of one `SceneArt` on the GPU, as RGBA or as planar YUV 4:2:0.

    Build one per render (the atlas and background are uploaded once), call
    `render_yuv` per frame, then `close()`. Pass `ctx` to share a context; a
    context created here is released by `close()`.
    """

    def __init__(self, art: SceneArt, ctx: moderngl.Context | None = None) -> None:
        check_art(art)
        width, height, bg = art.width, art.height, art.background
        self.width, self.height = width, height
        self._closed = False
        self._owns_ctx = ctx is None
        self.ctx = ctx = ctx if ctx is not None else create_context()

        try:
            atlas = pack(art.sprites, max_size=ctx.info["GL_MAX_TEXTURE_SIZE"])
        except Exception:
            if self._owns_ctx:
                ctx.release()
            raise
        self._rects = {n: (r.width, r.height, *r.uv) for n, r in atlas.rects.items()}
        self._atlas = ctx.texture(atlas.size, 4, np.ascontiguousarray(atlas.rgba))
        self._atlas.filter = moderngl.LINEAR, moderngl.LINEAR
        self._atlas.repeat_x = self._atlas.repeat_y = False

        # The background is written straight into a framebuffer's texture, top row
        # first, which is the row order of every other pass: no draw, no flip.
        self._bg_tex = ctx.texture((width, height), 4, np.ascontiguousarray(bg))
        self._bg_fbo = ctx.framebuffer(color_attachments=[self._bg_tex])
        self._frame_tex = ctx.texture((width, height), 4)
        self._frame_tex.filter = moderngl.NEAREST, moderngl.NEAREST
        self._frame_fbo = ctx.framebuffer(color_attachments=[self._frame_tex])
        # Each YUV target packs `pack` codes per texel (R8, RG8 or RGBA8), so its
        # bytes are the plane's bytes and the pass runs `pack` times fewer fragments.
        y_pack, c_pack = _pack_for(width), _pack_for(width // 2)
        self._y_pack, self._c_pack = y_pack, c_pack
        self._y_tex = ctx.texture((width // y_pack, height), y_pack)
        self._u_tex = ctx.texture((width // 2 // c_pack, height // 2), c_pack)
        self._v_tex = ctx.texture((width // 2 // c_pack, height // 2), c_pack)
        self._y_fbo = ctx.framebuffer(color_attachments=[self._y_tex])
        self._uv_fbo = ctx.framebuffer(color_attachments=[self._u_tex, self._v_tex])
        # A damage rectangle is read in whole texels of every target.
        self._align = (max(y_pack, 2 * c_pack), 2)
        self._ring = PboRing(ctx, width, height, y_pack, c_pack)

        self._sprite_prog = shaders.program(ctx, "sprite")
        self._sprite_prog["u_viewport"].value = (float(width), float(height))
        self._sprite_prog["u_atlas"].value = 0
        # Two variants rather than a uniform branch: llvmpipe ran the branch at
        # two thirds of the speed.
        self._luma_prog = shaders.program(ctx, "yuv420", {"PACK": y_pack})
        self._chroma_prog = shaders.program(ctx, "yuv420", {"PACK": c_pack, "CHROMA": 1})
        self._luma_prog["u_frame"].value = self._chroma_prog["u_frame"].value = 1
        self._luma_vao = ctx.vertex_array(self._luma_prog, [])
        self._chroma_vao = ctx.vertex_array(self._chroma_prog, [])
        self._instances = np.zeros((0, INSTANCE_FLOATS), np.float32)
        self._inst_buf: moderngl.Buffer | None = None
        self._sprite_vao: moderngl.VertexArray | None = None
        self._reserve(16)

        # One I420 buffer (Y, then U, then V), allocated once and reused: the
        # planes handed out are views of it, and an encoder can take it whole.
        y_size, c_size = width * height, (width // 2) * (height // 2)
        self._i420 = np.zeros(y_size + 2 * c_size, np.uint8)
        self._y = self._i420[:y_size].reshape(height, width)
        self._u = self._i420[y_size : y_size + c_size].reshape(height // 2, width // 2)
        self._v = self._i420[y_size + c_size :].reshape(height // 2, width // 2)

    @property
    def i420(self) -> np.ndarray:
        """The last `render_yuv` output as one (height * 3 // 2, width) I420 array."""
        return self._i420.reshape(self.height * 3 // 2, self.width)

    def _reserve(self, count: int) -> None:
        """Grow the instance buffer (doubling) to hold `count` placements."""
        if count <= len(self._instances):
            return
        capacity = max(count, 2 * len(self._instances))
        self._instances = np.zeros((capacity, INSTANCE_FLOATS), np.float32)
        if self._sprite_vao is not None:
            self._sprite_vao.release()
            self._inst_buf.release()
        self._inst_buf = self.ctx.buffer(reserve=self._instances.nbytes, dynamic=True)
        self._sprite_vao = self.ctx.vertex_array(
            self._sprite_prog,
            [(self._inst_buf, "4f 4f 1f/i", "in_dest", "in_uv", "in_opacity")],
        )

    def _scissor(self, rect: Rect | None) -> None:
        """Limit every pass to `rect` (None: the whole frame). Outside it the targets
        keep stale pixels, which is right only for a read of `rect` alone."""
        if rect is None:
            self._frame_fbo.scissor = self._y_fbo.scissor = self._uv_fbo.scissor = None
            return
        x0, y0, x1, y1 = rect
        w, h = x1 - x0, y1 - y0
        yp, cp = self._y_pack, self._c_pack
        self._frame_fbo.scissor = (x0, y0, w, h)  # framebuffer row r is image row r
        self._y_fbo.scissor = (x0 // yp, y0, w // yp, h)
        self._uv_fbo.scissor = (x0 // 2 // cp, y0 // 2, w // 2 // cp, h // 2)

    def _compose(self, placements: Sequence[Placement]) -> None:
        ctx = self.ctx
        self._frame_fbo.use()  # its scissor box, if any, limits the blit too
        ctx.copy_framebuffer(self._frame_fbo, self._bg_fbo)
        count = len(placements)
        if count == 0:
            return
        self._reserve(count)
        rows = self._instances
        for i, p in enumerate(placements):
            try:
                w, h, u0, v0, u1, v1 = self._rects[p.sprite]
            except KeyError:
                raise KeyError(f"Placement names an unknown sprite {p.sprite!r}") from None
            rows[i] = (p.x, p.y, w * p.scale, h * p.scale, u0, v0, u1, v1, p.opacity)
        self._inst_buf.write(rows[:count])
        self._atlas.use(0)
        ctx.enable_only(moderngl.BLEND)
        ctx.blend_func = moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA
        self._sprite_vao.render(moderngl.TRIANGLE_STRIP, vertices=4, instances=count)
        ctx.enable_only(moderngl.NOTHING)

    def render_rgba(self, placements: Sequence[Placement]) -> np.ndarray:
        """One frame as a new (height, width, 4) uint8 premultiplied RGBA array."""
        self._scissor(None)
        self._compose(placements)
        out = np.empty((self.height, self.width, 4), np.uint8)
        self._frame_fbo.read_into(out, components=4, alignment=1)
        return out

    def render_yuv(
        self, placements: Sequence[Placement]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One frame as BT.709 limited-range Y (H, W), U and V (H/2, W/2) uint8 planes.

        The planes are views of a buffer reused by the next call: encode or copy
        them before rendering again.
        """
        self._scissor(None)
        self._compose(placements)
        self._convert()
        self._y_fbo.read_into(self._y, components=self._y_pack, alignment=1)
        c_pack = self._c_pack
        self._uv_fbo.read_into(self._u, components=c_pack, attachment=0, alignment=1)
        self._uv_fbo.read_into(self._v, components=c_pack, attachment=1, alignment=1)
        return self._y, self._u, self._v

    def _convert(self) -> None:
        self._frame_tex.use(1)
        self._y_fbo.use()
        self._luma_vao.render(moderngl.TRIANGLES, vertices=3)
        self._uv_fbo.use()
        self._chroma_vao.render(moderngl.TRIANGLES, vertices=3)

    def yuv_target(self, planes=None) -> PlaneTarget:
        """A target for `submit` and `draw` whose pixels are unknown yet."""
        return PlaneTarget(planes)

    def submit(self, placements: Sequence[Placement], target: PlaneTarget) -> Ticket | None:
        """Draw a frame and queue the read of its damage against what `target` shows.

        Returns None when nothing changed; else a ticket for `complete`, which copies
        the pixels into `target.planes`. At most three tickets may be outstanding;
        complete them in order.
        """
        placements = tuple(placements)
        bounds = self._bounds
        for p in placements:
            bounds(p)  # names an unknown sprite before anything is drawn
        rect = damage(target.shows, placements, bounds, (self.width, self.height), self._align)
        target.shows = placements
        if rect is None:
            return None
        # Only the damage is drawn, converted and read: on the H200 the whole-frame
        # passes made this path's cost grow with the frame (8,073 frames/s at 720p,
        # 4,524 at 1080p). The rectangle is whole texels of every target, so its YUV
        # needs no pixel outside it.
        self._scissor(rect)
        self._compose(placements)
        self._convert()
        return self._ring.read(self._y_fbo, self._uv_fbo, rect)

    def flush(self) -> bool:
        """Hand the commands queued so far to the GPU now (glFlush), so that a frame's
        read-back starts before the next frame is submitted; whether it could."""
        flush = _gl_flush()
        if flush is None:
            return False
        flush()  # the current context: ours, as for every other call made here
        return True

    def complete(self, ticket: Ticket, target: PlaneTarget) -> Rect:
        """Copy a submitted frame's damage into `target.planes`; the rectangle copied."""
        self._ring.fetch(ticket, target.planes)
        return ticket.rect

    def draw(self, placements: Sequence[Placement], target: PlaneTarget) -> Rect | None:
        """`submit` then `complete`: bring `target` up to `placements` now."""
        ticket = self.submit(placements, target)
        return None if ticket is None else self.complete(ticket, target)

    def _bounds(self, p: Placement) -> Rect:
        try:
            w, h = self._rects[p.sprite][:2]
        except KeyError:
            raise KeyError(f"Placement names an unknown sprite {p.sprite!r}") from None
        return placement_bounds(p, w, h)

    def close(self) -> None:
        """Release every GL object (and the context, if this compositor made it)."""
        if self._closed:
            return
        self._closed = True
        self._ring.release()
        objects = [
            self._sprite_vao, self._inst_buf, self._luma_vao, self._chroma_vao,
            self._sprite_prog, self._luma_prog, self._chroma_prog,
            self._y_fbo, self._uv_fbo, self._frame_fbo, self._bg_fbo,
            self._y_tex, self._u_tex, self._v_tex, self._frame_tex, self._bg_tex, self._atlas,
        ]
        for obj in objects:
            if obj is not None:
                obj.release()
        self._sprite_vao = self._inst_buf = None
        if self._owns_ctx:
            self.ctx.release()

    def __enter__(self) -> GLCompositor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
