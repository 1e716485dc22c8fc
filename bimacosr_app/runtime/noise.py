"""The position-derived noise of model/noise.py in NumPy float32 (DESIGN.md 2.3).

The uniforms come from the kernels' ``position_uniforms`` (integer-exact: bit-identical to the
torch definition); Box-Muller ``sqrt(-2 log u1) * cos(2 pi u2)`` runs here in float32, in
place, in torch's order of operations (NumPy's log and cos may differ from torch's in the last
bit).
"""

from __future__ import annotations

import math

import numpy as np

from .layers import kernels

__all__ = ["position_noise"]

_MASK32 = 0xFFFFFFFF


def position_noise(seed: int, top: int, left: int, height: int, width: int,
                   channels: int) -> np.ndarray:
    """Standard normal noise (channels, height, width) float32 for the LR region at
    (top, left); a function of (seed, channel, absolute row, absolute column) only."""
    u1, u2 = kernels().position_uniforms((seed * 2) & _MASK32, (seed * 2 + 1) & _MASK32,
                                         top, left, height, width, channels)  # (C, h, w) each
    np.log(u1, out=u1)
    u1 *= np.float32(-2.0)
    np.sqrt(u1, out=u1)
    u2 *= np.float32(2.0 * math.pi)
    np.cos(u2, out=u2)
    u1 *= u2
    return u1
