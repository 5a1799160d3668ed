"""The CPU compositor's inner loop, compiled (numba): a region's layers blended and
converted to YUV 4:2:0 in one pass, two rows at a time.

The numpy path (node/render/cpu.py `_composite`, node/render/yuv.py) runs some
twenty array operations a region, each over the whole region: a small region was
its call overheads, a large one its passes through memory. Here each pixel is
read once, blended through every layer over it and converted while it is in a
register, with the same integer arithmetic, so the codes are the numpy path's bit
for bit (tests/test_render_cpu.py compares them on every template):

- blend: dst = src + round(dst * inv / 255), round(x / 255) = (t + (t >> 8)) >> 8
  with t = x + 128; dst starts as the background;
- Y from each pixel, U and V from the sum of each 2x2 block, in 16.16 fixed point
  with node/render/yuv.py's coefficients and offsets.

Compiled once per machine (numba's cache, beside this file), released the GIL while
it runs, so the encoder's thread keeps going beside it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from node.render.yuv import C_OFFSET, SHIFT, U_COEF, V_COEF, Y_COEF, Y_OFFSET

# One row of `layers`: where the sprite's planes start in the atlas, its width and
# plane size, the window of the frame it covers in this region (x0, y0, x1, y1),
# and its top-left corner in the frame.
LAYER_FIELDS = 9
Y0, Y1, Y2 = Y_COEF
U0, U1, U2 = U_COEF
V0, V1, V2 = V_COEF


@njit(nogil=True, cache=True)
def draw_yuv(background: np.ndarray, atlas: np.ndarray, layers: np.ndarray,
             x0: int, y0: int, x1: int, y1: int,
             y_plane: np.ndarray, u_plane: np.ndarray, v_plane: np.ndarray,
             rows: np.ndarray) -> None:  # pragma: no cover - compiled
    """Composite the region (x0, y0)-(x1, y1) (even corners) into the planes.

    `background` (3, H, W) planar RGB; `atlas` flat uint8, each sprite as four
    (h, w) planes: r, g, b (premultiplied) and 255 - alpha; `layers`
    (k, LAYER_FIELDS) int64 in draw order; `rows` int32 scratch of at least
    (3, 2, x1 - x0). The loops run along one-dimensional row views, branch-free:
    LLVM vectorizes them (indexing the 3-D scratch directly ran 6x slower).
    """
    w = x1 - x0
    for top in range(y0, y1, 2):
        for c in range(3):
            for r in range(2):
                dst, src = rows[c, r, :w], background[c, top + r, x0:x1]
                for x in range(w):
                    dst[x] = src[x]
        for k in range(layers.shape[0]):
            offset, sw, plane = layers[k, 0], layers[k, 1], layers[k, 2]
            lx0, ly0, lx1, ly1 = layers[k, 3], layers[k, 4], layers[k, 5], layers[k, 6]
            ox, oy = layers[k, 7], layers[k, 8]
            n = lx1 - lx0
            for r in range(2):
                y = top + r
                if y < ly0 or y >= ly1:
                    continue
                at = offset + (y - oy) * sw + (lx0 - ox)
                inv = atlas[at + 3 * plane: at + 3 * plane + n]
                for c in range(3):
                    src = atlas[at + c * plane: at + c * plane + n]
                    dst = rows[c, r, lx0 - x0: lx1 - x0]
                    for x in range(n):
                        t = dst[x] * np.int32(inv[x]) + 128
                        dst[x] = src[x] + ((t + (t >> 8)) >> 8)
        for r in range(2):
            red, green, blue = rows[0, r, :w], rows[1, r, :w], rows[2, r, :w]
            out = y_plane[top + r, x0:x1]
            for x in range(w):
                out[x] = (Y0 * red[x] + Y1 * green[x] + Y2 * blue[x] + Y_OFFSET) >> SHIFT
        cx0, cx1 = x0 // 2, x1 // 2
        u_out, v_out = u_plane[top // 2, cx0:cx1], v_plane[top // 2, cx0:cx1]
        r0, r1 = rows[0, 0, :w], rows[0, 1, :w]
        g0, g1 = rows[1, 0, :w], rows[1, 1, :w]
        b0, b1 = rows[2, 0, :w], rows[2, 1, :w]
        for x in range(w // 2):
            i = 2 * x
            s0 = r0[i] + r0[i + 1] + r1[i] + r1[i + 1]
            s1 = g0[i] + g0[i + 1] + g1[i] + g1[i + 1]
            s2 = b0[i] + b0[i + 1] + b1[i] + b1[i + 1]
            u_out[x] = (U0 * s0 + U1 * s1 + U2 * s2 + C_OFFSET) >> SHIFT
            v_out[x] = (V0 * s0 + V1 * s1 + V2 * s2 + C_OFFSET) >> SHIFT
