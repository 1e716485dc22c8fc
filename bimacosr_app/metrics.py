"""Image quality metrics on the luma channel: PSNR-Y and SSIM-Y.

Luma is ITU-R BT.601 "studio swing" Y as in MATLAB's rgb2ycbcr, the convention of SR papers:
``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for RGB in [0, 1], Y in [16, 235] on a 0..255
scale. ``border`` pixels are shaved from each side before measuring (4 for x4 results).
SSIM uses the Wang et al. (2004) 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03.
Inputs are (3,H,W) or (B,3,H,W) float tensors in [0, 1], or (H,W,3) numpy arrays. Computed
in float64 with NumPy, so the app's result check (jobs/quality.py) needs no torch; training
passes its tensors as they are.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr_y", "rgb_to_y", "ssim_y"]

_LUMA = np.array([65.481, 128.553, 24.966])


def _as_batch(img) -> np.ndarray:
    """(B,3,H,W) float64: a NumPy (H,W,3) image, or a (3,H,W) / (B,3,H,W) tensor."""
    if isinstance(img, np.ndarray):
        x = np.asarray(img, dtype=np.float64).transpose(2, 0, 1)
    else:  # a torch tensor (training): converted without importing torch here
        x = np.asarray(img.detach().cpu().double().numpy())
    return x[None] if x.ndim == 3 else x


def rgb_to_y(img) -> np.ndarray:
    """(B,3,H,W) or (3,H,W) in [0,1] -> (B,1,H,W) luma on the 0..255 scale (float64)."""
    x = _as_batch(img)
    return np.einsum("bchw,c->bhw", x, _LUMA)[:, None] + 16.0


def _shave(y: np.ndarray, border: int) -> np.ndarray:
    return y[..., border:-border, border:-border] if border else y


def psnr_y(img, ref, border: int = 4) -> float:
    """PSNR of the luma (dB, peak 255), mean over the batch."""
    a, b = _shave(rgb_to_y(img), border), _shave(rgb_to_y(ref), border)
    mse = np.square(a - b).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        psnr = np.where(mse == 0, math.inf, 10 * np.log10(255.0**2 / mse))
    return float(psnr.mean())


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    coords = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The 2-D Gaussian window (outer product of ``g``) over the valid positions of the last
    two axes, as two 1-D passes."""
    k = len(g)
    h, w = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    rows = sum(g[i] * x[..., i:i + h, :] for i in range(k))
    return sum(g[i] * rows[..., i:i + w] for i in range(k))


def ssim_y(img, ref, border: int = 4) -> float:
    """SSIM of the luma, mean over the valid (unpadded) window positions and the batch."""
    a, b = _shave(rgb_to_y(img), border), _shave(rgb_to_y(ref), border)
    g = _gaussian_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _blur(a, g), _blur(b, g)
    var_a = _blur(a * a, g) - mu_a**2
    var_b = _blur(b * b, g) - mu_b**2
    cov = _blur(a * b, g) - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    ssim = numerator / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim.mean())
