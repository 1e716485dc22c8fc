"""The one-step pipeline's fixed pixel operations in NumPy float32, as model/latent.py and
model/noise.py define them in torch: the bicubic latent, the position noise and the latent's
image.

Layouts: LR images NHWC (N, h, w, 3); latents NHWC (N, h, w, 3 * s^2) with channel
``c * s^2 + dy * s + dx`` holding pixel (s*y + dy, s*x + dx) of image channel c (torch's
pixel_unshuffle / pixel_shuffle order); HR images NCHW (N, 3, s*h, s*w), the engine backends'
layout.
"""

from __future__ import annotations

import math

import numpy as np

from ..model.config import SCALE
from .layers import kernels

__all__ = ["latent_bicubic", "latent_to_image", "position_noise"]

_MASK32 = 0xFFFFFFFF


def _cubic_weights() -> list[tuple[int, np.ndarray]]:
    """Per output phase k (output pixel SCALE * i + k): the first of its 4 input taps relative
    to i - 2 (the input padded by 2 on each side) and their 4 float32 weights.

    torch's bicubic (align_corners=False): output o reads input coordinate
    (o + 0.5) / SCALE - 0.5, i.e. i + (2k + 1 - SCALE) / (2 SCALE); with f its floor and t the
    fraction, the taps f - 1 .. f + 2 (clamped to the image) get the cubic convolution weights
    (A = -0.75) of distances t + 1, t, 1 - t, 2 - t, computed in float32 as torch does.
    """
    a = np.float32(-0.75)
    one = np.float32(1.0)

    def near(x):  # |x| <= 1
        return ((a + np.float32(2)) * x - (a + np.float32(3))) * x * x + one

    def far(x):  # 1 < |x| < 2
        return ((a * x - np.float32(5) * a) * x + np.float32(8) * a) * x - np.float32(4) * a

    phases = []
    for k in range(SCALE):
        real = (k + 0.5) / SCALE - 0.5  # relative to i; exact in binary
        f = math.floor(real)
        t = np.float32(real - f)
        phases.append((f + 1, np.array([far(t + one), near(t), near(one - t),
                                        far((one - t) + one)], np.float32)))
    return phases


_PHASES = _cubic_weights()


def latent_bicubic(lr: np.ndarray) -> np.ndarray:
    """z_y = PU(bicubic_x4(lr)): (N, h, w, 3) float32 -> (N, h, w, 48), not clamped. Rows of
    each output phase are interpolated along x first, then along y, each as
    ``((v0 w0 + v1 w1) + v2 w2) + v3 w3`` in float32; border taps clamp to the edge."""
    n, h, w, c = lr.shape
    lp = np.pad(lr, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")  # (N, h+4, w+4, C)

    def interpolate(src: np.ndarray, axis: int, size: int, start: int, wts: np.ndarray):
        take = [slice(None)] * src.ndim
        acc = None
        for j in range(4):
            take[axis] = slice(start + j, start + j + size)
            term = src[tuple(take)] * wts[j]
            acc = term if acc is None else acc + term
        return acc

    hx = np.stack([interpolate(lp, 2, w, s, wts) for s, wts in _PHASES], axis=-1)  # (..., C, dx)
    z = np.stack([interpolate(hx, 1, h, s, wts) for s, wts in _PHASES], axis=-2)  # (.., dy, dx)
    return z.reshape(n, h, w, c * SCALE * SCALE)


def position_noise(seed: int, top: int, left: int, height: int, width: int,
                   channels: int) -> np.ndarray:
    """Standard normal noise (height, width, channels) float32 for the LR region at
    (top, left): model/noise.py's uniforms (the kernels', bit-identical) and its Box-Muller
    ``sqrt(-2 log u1) * cos(2 pi u2)`` in float32. A (h, w, C) view of (C, h, w) memory."""
    u1, u2 = kernels().position_uniforms((seed * 2) & _MASK32, (seed * 2 + 1) & _MASK32,
                                         top, left, height, width, channels)  # (C, h, w)
    z = np.sqrt(np.float32(-2.0) * np.log(u1)) * np.cos(np.float32(2.0 * math.pi) * u2)
    return z.transpose(1, 2, 0)


def latent_to_image(x0: np.ndarray, scale: int) -> np.ndarray:
    """clamp((PS(x0) + 1) / 2, 0, 1): (N, h, w, 3 * scale^2) -> (N, 3, scale*h, scale*w)."""
    n, h, w, c = x0.shape
    ch = c // (scale * scale)
    img = x0.reshape(n, h, w, ch, scale, scale).transpose(0, 3, 1, 4, 2, 5)
    img = img.reshape(n, ch, h * scale, w * scale)  # a copy in NCHW order
    img += np.float32(1)
    img *= np.float32(0.5)
    return np.clip(img, 0, 1, out=img)
