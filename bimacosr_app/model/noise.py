"""Deterministic, position-derived Gaussian noise (DESIGN.md 2.3).

eps[c, y, x] is a pure function of (seed, channel, absolute LR row, absolute LR column), so a
tile computes exactly the noise the whole image would have there, and the same input and
settings always give the same output, on any device. Uniforms come from a 32-bit integer hash
(Wellons' "lowbias32" finaliser, chained over seed, row, column, channel and stream); two
uniforms give one normal value by Box-Muller.

On the CPU the uniforms come from the native kernels' ``position_uniforms`` when they are
available (bimacosr_app._bitkernels, integer-exact, so bit-identical to the torch definition
below, which stays the definition and the fallback); Box-Muller always runs in torch.
"""

from __future__ import annotations

import math

import torch

__all__ = ["position_noise"]

_MASK32 = 0xFFFFFFFF


def _lowbias32(x: torch.Tensor) -> torch.Tensor:
    """32-bit integer hash on int64 tensors holding values in [0, 2^32)."""
    # Products wrap in two's complement; their low 32 bits are exact, which is all we keep.
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def _uniform(seed: int, stream: int, ch, ys, xs) -> torch.Tensor:
    """Uniform in (0, 1), float32, broadcast over (C,1,1), (1,H,1), (1,1,W)."""
    h = _lowbias32(torch.tensor((seed * 2 + stream) & _MASK32, dtype=torch.int64, device=ys.device))
    h = _lowbias32(h ^ (ys & _MASK32))
    h = _lowbias32(h ^ (xs & _MASK32))
    h = _lowbias32(h ^ ch)
    # top 24 bits -> exactly representable float32 in (0, 1)
    return ((h >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))


def _native_uniforms(seed: int, top: int, left: int, height: int, width: int,
                     channels: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(u1, u2), each (C, H, W) float32, from the native kernels; None where unavailable."""
    from ..native import load_kernels  # lazy: the module loads on first use

    kernels = load_kernels()
    if kernels is None:
        return None
    u1, u2 = kernels.position_uniforms((seed * 2) & _MASK32, (seed * 2 + 1) & _MASK32,
                                       top, left, height, width, channels)
    return torch.from_numpy(u1), torch.from_numpy(u2)


def position_noise(
    seed: int,
    top: int,
    left: int,
    height: int,
    width: int,
    channels: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Standard normal noise (1, channels, height, width) for the LR region at (top, left)."""
    device = torch.device(device)
    native = _native_uniforms(seed, top, left, height, width, channels) \
        if device.type == "cpu" else None
    if native is not None:
        u1, u2 = native
    else:
        ch = torch.arange(channels, dtype=torch.int64, device=device).view(-1, 1, 1)
        ys = torch.arange(top, top + height, dtype=torch.int64, device=device).view(1, -1, 1)
        xs = torch.arange(left, left + width, dtype=torch.int64, device=device).view(1, 1, -1)
        u1 = _uniform(seed, 0, ch, ys, xs)
        u2 = _uniform(seed, 1, ch, ys, xs)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)
    return z.unsqueeze(0)
