"""RGB to YUV 4:2:0 (BT.709, limited range), the reference for the GL pass.

Same arithmetic as shaders/yuv420.glsl: luma per pixel; chroma of the mean RGB of
each 2x2 block; codes rounded half up (floor(x + 0.5)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# BT.709 luma weights (Kr, Kg, Kb); chroma divisors are 2 * (1 - Kb) and 2 * (1 - Kr).
KR, KG, KB = 0.2126, 0.7152, 0.0722


def _codes(x: Tensor) -> Tensor:
    return torch.floor(x.clamp(0.0, 255.0) + 0.5).to(torch.uint8)


def rgb_to_yuv420(rgb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Convert RGB images to planar BT.709 limited-range YUV 4:2:0.

    Args:
        rgb: (..., 3, H, W) with even H and W; float in [0, 1], or uint8.

    Returns:
        Y (..., H, W), U (..., H/2, W/2) and V (..., H/2, W/2), uint8 codes:
        Y in 16..235, U and V in 16..240 for in-range input.
    """
    if not isinstance(rgb, Tensor):
        raise TypeError(f"Expected a torch.Tensor. Got {type(rgb).__name__}")
    shape = tuple(rgb.shape)
    if rgb.dim() < 3 or shape[-3] != 3 or shape[-2] % 2 or shape[-1] % 2 or 0 in shape[-2:]:
        raise ValueError(f"Expected (..., 3, H, W) with even H and W. Got {shape}")
    if rgb.dtype == torch.uint8:
        rgb = rgb.to(torch.float32) / 255.0
    elif rgb.is_floating_point():
        rgb = rgb.to(torch.float32)
    else:
        raise TypeError(f"Expected a float tensor in [0, 1] or uint8. Got {rgb.dtype}")

    batch = shape[:-3]
    h, w = shape[-2:]
    r, g, b = rgb.unbind(-3)
    luma = KR * r + KG * g + KB * b
    y = _codes(16.0 + 219.0 * luma)

    # Mean of each 2x2 block first, then the (linear) chroma transform, as the shader.
    mean = F.avg_pool2d(rgb.reshape(-1, 3, h, w), kernel_size=2)
    mr, mg, mb = mean.unbind(1)
    mluma = KR * mr + KG * mg + KB * mb
    u = _codes(128.0 + 224.0 * (mb - mluma) / (2.0 * (1.0 - KB)))
    v = _codes(128.0 + 224.0 * (mr - mluma) / (2.0 * (1.0 - KR)))
    half = (*batch, h // 2, w // 2)
    return y, u.reshape(half), v.reshape(half)


class RgbToYuv420(nn.Module):
    """Module form of `rgb_to_yuv420`: (..., 3, H, W) to (Y, U, V) uint8 planes."""

    def forward(self, rgb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return rgb_to_yuv420(rgb)
