"""Image quality metrics on the luma channel: PSNR-Y and SSIM-Y.

Luma is ITU-R BT.601 "studio swing" Y as in MATLAB's rgb2ycbcr, the convention of SR papers:
``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for RGB in [0, 1], Y in [16, 235] on a 0..255
scale. ``border`` pixels are shaved from each side before measuring (4 for x4 results).
SSIM uses the Wang et al. (2004) 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03.
Inputs are (3,H,W) or (B,3,H,W) float tensors in [0, 1], or (H,W,3) numpy arrays.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["psnr_y", "rgb_to_y", "ssim_y"]


def _as_batch(img) -> torch.Tensor:
    if isinstance(img, np.ndarray):
        img = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    img = img.double()
    return img[None] if img.dim() == 3 else img


def rgb_to_y(img) -> torch.Tensor:
    """(B,3,H,W) or (3,H,W) in [0,1] -> (B,1,H,W) luma on the 0..255 scale."""
    x = _as_batch(img)
    w = torch.tensor([65.481, 128.553, 24.966], dtype=x.dtype, device=x.device)
    return (x * w.view(1, 3, 1, 1)).sum(1, keepdim=True) + 16.0


def _shave(y: torch.Tensor, border: int) -> torch.Tensor:
    return y[..., border:-border, border:-border] if border else y


def psnr_y(img, ref, border: int = 4) -> float:
    """PSNR of the luma (dB, peak 255), mean over the batch."""
    a, b = _shave(rgb_to_y(img), border), _shave(rgb_to_y(ref), border)
    mse = (a - b).square().mean(dim=(1, 2, 3))
    return float(torch.where(mse == 0, math.inf, 10 * torch.log10(255.0**2 / mse)).mean())


def ssim_y(img, ref, border: int = 4) -> float:
    """SSIM of the luma, mean over the valid (unpadded) window positions and the batch."""
    a, b = _shave(rgb_to_y(img), border), _shave(rgb_to_y(ref), border)
    coords = torch.arange(11, dtype=a.dtype, device=a.device) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).view(1, 1, 11, 11)

    def blur(x):
        return F.conv2d(x, window)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    ssim = numerator / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim.mean())
