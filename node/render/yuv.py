"""RGB to YUV 4:2:0 (BT.709, limited range) in integer numpy, for the CPU compositor.

The same arithmetic as shaders/yuv420.glsl and kernels/yuv.py: luma per pixel,
chroma of the mean RGB of each 2x2 block, codes rounded half up. Here in 16.16
fixed point: every coefficient is within 2^-17 of its real value, so a code
differs from the float64 reference only where the exact value lies within about
0.01 of a rounding boundary, and then by one.

Why not float32 and a BLAS dot product: OpenBLAS starts a thread per core whose
spinning, beside x264's threads on a 2-core node, made every numpy call around
it 2 to 4x slower; integer ufuncs use no threads and measured the same speed as
single-threaded BLAS.

Inputs are contiguous planar (3, h, w) uint16 RGB in 0..255 (what the
compositor blends in); h and w are even. Work arrays come from a `Scratch`,
allocated once per render: fresh memory is slow to touch on the development
VMs (DESIGN.md).
"""

from __future__ import annotations

import numpy as np

KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB
SHIFT = 16


def _fixed(x: float) -> int:
    return int(round(x * (1 << SHIFT)))


# Y = 16 + 219 * luma(rgb / 255); U and V from the sum of a 2x2 block (4x its mean).
Y_COEF = tuple(_fixed(219.0 / 255.0 * k) for k in (KR, KG, KB))
U_COEF = tuple(_fixed(224.0 / 1.8556 / 255.0 / 4.0 * k) for k in (-KR, -KG, 1.0 - KB))
V_COEF = tuple(_fixed(224.0 / 1.5748 / 255.0 / 4.0 * k) for k in (1.0 - KR, -KG, -KB))
Y_OFFSET = _fixed(16.5)  # + 0.5, then the shift floors: floor(x + 0.5), as the shader
C_OFFSET = _fixed(128.5)


class Scratch:
    """Work arrays for regions of up to width x height pixels, reused by every call."""

    def __init__(self, width: int, height: int) -> None:
        n = width * height
        self.acc = np.empty(n, np.int32)
        self.tmp = np.empty(n, np.int32)
        self.rows = np.empty(3 * n // 2, np.uint16)
        self.sums = np.empty(3 * n // 4, np.uint16)


def _dot(planes: np.ndarray, coef: tuple[int, int, int], offset: int,
         acc: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """(c0 * p0 + c1 * p1 + c2 * p2 + offset) >> SHIFT in int32, into `acc`."""
    np.multiply(planes[0], coef[0], out=acc, dtype=np.int32)
    for plane, c in zip(planes[1:], coef[1:]):
        np.multiply(plane, c, out=tmp, dtype=np.int32)
        acc += tmp
    acc += offset
    acc >>= SHIFT
    return acc


def convert_into(rgb: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray,
                 scratch: Scratch) -> None:
    """Write the Y (h, w) and U, V (h/2, w/2) codes of planar `rgb` (3, h, w) uint16.

    `y`, `u` and `v` may be strided views (a region of a frame's planes).
    """
    _, h, w = rgb.shape
    if h % 2 or w % 2:
        raise ValueError(f"Expected an even-sized region. Got {w}x{h}")
    n, q = h * w, (h // 2) * (w // 2)
    acc, tmp = scratch.acc[:n].reshape(h, w), scratch.tmp[:n].reshape(h, w)
    np.copyto(y, _dot(rgb, Y_COEF, Y_OFFSET, acc, tmp), casting="unsafe")
    # 2x2 sums in uint16 (at most 4 * 255): rows first, so the strided half is small.
    rows = scratch.rows[: 3 * n // 2].reshape(3, h // 2, w)
    np.add(rgb[:, 0::2], rgb[:, 1::2], out=rows)
    sums = scratch.sums[: 3 * q].reshape(3, h // 2, w // 2)
    np.add(rows[..., 0::2], rows[..., 1::2], out=sums)
    acc, tmp = scratch.acc[:q].reshape(h // 2, w // 2), scratch.tmp[:q].reshape(h // 2, w // 2)
    np.copyto(u, _dot(sums, U_COEF, C_OFFSET, acc, tmp), casting="unsafe")
    np.copyto(v, _dot(sums, V_COEF, C_OFFSET, acc, tmp), casting="unsafe")


def rgba_to_i420(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """New Y, U, V planes of an (H, W, 4) or (H, W, 3) uint8 image (alpha ignored)."""
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4) or rgba.dtype != np.uint8:
        raise ValueError(f"Expected (H, W, 3 or 4) uint8. Got {rgba.shape} {rgba.dtype}")
    h, w = rgba.shape[:2]
    rgb = np.ascontiguousarray(rgba[..., :3].transpose(2, 0, 1), dtype=np.uint16)
    y = np.empty((h, w), np.uint8)
    u = np.empty((h // 2, w // 2), np.uint8)
    v = np.empty((h // 2, w // 2), np.uint8)
    convert_into(rgb, y, u, v, Scratch(w, h))
    return y, u, v
