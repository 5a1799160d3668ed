"""The reference compositor: premultiplied "over" in float32, in torch.

Matches the GL path (node/render/gl.py) exactly in geometry and to rounding in
colour: GL blends in 8 bits after every sprite, this keeps float32 throughout and
rounds once. Sampling: at integer positions and scale 1 each output pixel takes its
sprite texel directly; otherwise bilinear with a transparent border, as GL's
linear filter over the atlas's transparent gutter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from node.render.types import Placement, SceneArt


def _premultiplied(rgba: np.ndarray, device: torch.device | str) -> Tensor:
    # Sprites are read-only arrays, which torch will not wrap: copied only then.
    return torch.from_numpy(np.require(rgba, requirements=["C", "W"])).to(device, torch.float32) / 255.0


def resample(src: Tensor, p: Placement, x0: int, y0: int, x1: int, y1: int) -> Tensor:
    """Bilinear samples of `src` (h, w, 4) at the centres of output pixels [x0, x1) x [y0, y1).

    Pixels whose centres fall outside the placed rectangle are zero: GL does not
    rasterize them.
    """
    h, w = src.shape[:2]
    device = src.device
    xs = torch.arange(x0, x1, device=device, dtype=torch.float32) + 0.5
    ys = torch.arange(y0, y1, device=device, dtype=torch.float32) + 0.5
    # Output pixel centre to the sprite's normalised [-1, 1] coordinates (texel edges).
    gx = (xs - p.x) / (w * p.scale) * 2.0 - 1.0
    gy = (ys - p.y) / (h * p.scale) * 2.0 - 1.0
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)[None]
    out = F.grid_sample(
        src.permute(2, 0, 1)[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )[0].permute(1, 2, 0)
    inside = (grid[0].abs() <= 1.0).all(dim=-1, keepdim=True)
    return out * inside


def composite(
    art: SceneArt, placements: Iterable[Placement], device: torch.device | str = "cpu"
) -> Tensor:
    """Composite one frame: the background, then each placement in order, premultiplied over.

    Args:
        art: background (H, W, 4) and sprites, uint8 premultiplied RGBA.
        placements: drawn in order; top-left at (x, y) in output pixels, y down.

    Returns:
        (H, W, 4) uint8 premultiplied RGBA.
    """
    H, W = art.height, art.width
    if art.background.shape != (H, W, 4):
        raise ValueError(f"Expected a ({H}, {W}, 4) background. Got {art.background.shape}")
    frame = _premultiplied(art.background, device)
    for p in placements:
        try:
            sprite = art.sprites[p.sprite]
        except KeyError:
            raise KeyError(f"Placement names an unknown sprite {p.sprite!r}") from None
        sw, sh = sprite.size
        # Output pixels whose centres lie inside the placed rectangle.
        x0 = max(0, math.ceil(p.x - 0.5))
        y0 = max(0, math.ceil(p.y - 0.5))
        x1 = min(W, math.ceil(p.x + sw * p.scale - 0.5))
        y1 = min(H, math.ceil(p.y + sh * p.scale - 0.5))
        if x0 >= x1 or y0 >= y1:
            continue
        src = _premultiplied(sprite.rgba, device)
        if p.scale == 1.0 and float(p.x).is_integer() and float(p.y).is_integer():
            src = src[y0 - int(p.y) : y1 - int(p.y), x0 - int(p.x) : x1 - int(p.x)]
        else:
            src = resample(src, p, x0, y0, x1, y1)
        src = src * p.opacity
        dst = frame[y0:y1, x0:x1]
        frame[y0:y1, x0:x1] = src + dst * (1.0 - src[..., 3:4])
    return torch.floor(frame * 255.0 + 0.5).clamp(0, 255).to(torch.uint8)
