"""The latent space: a lossless PixelUnshuffle(4) of the image (DESIGN.md 2.1).

Images are (B,3,H,W) in [-1, 1]; the latent of an HR image of size (4h, 4w) is (B,48,h,w).
``x0 = to_latent(HR)``, ``z_y = to_latent(bicubic_x4(LR))``. No learned autoencoder: every
operation left is in the (binarized) denoiser.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import LATENT_CHANNELS, SCALE

__all__ = ["LATENT_CHANNELS", "SCALE", "bicubic_upscale", "from_latent", "to_latent"]


def to_latent(image: torch.Tensor) -> torch.Tensor:
    """(B,3,4h,4w) -> (B,48,h,w)."""
    return F.pixel_unshuffle(image, SCALE)


def from_latent(latent: torch.Tensor) -> torch.Tensor:
    """(B,48,h,w) -> (B,3,4h,4w)."""
    return F.pixel_shuffle(latent, SCALE)


def bicubic_upscale(lr: torch.Tensor) -> torch.Tensor:
    """(B,3,h,w) -> (B,3,4h,4w), plain bicubic (align_corners=False), not clamped."""
    return F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False)
