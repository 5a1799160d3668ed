"""Torch kernels: RGB to YUV 4:2:0 and the reference sprite compositor."""

from kernels.composite import composite
from kernels.yuv import RgbToYuv420, rgb_to_yuv420

__all__ = ["RgbToYuv420", "composite", "rgb_to_yuv420"]
