"""The parameter-free full-precision shortcut around every binarizable layer (DESIGN.md 2.8).

A shortcut maps a layer's input (Cin channels) to its output (Cout channels) by a fixed 0/1
channel pattern, at the layer's stride:

* Cin >= Cout: input channel i feeds output i mod Cout, and each output averages the inputs
  that feed it. Cin == Cout is the identity; for the decoder's fuse of concat(x, skip), two
  C-channel maps, it is (x + skip) / 2.
* Cin < Cout: output o copies input o mod Cin (q, k and v each get x; a widening layer repeats
  its input's channels).
* Stride s: output pixel p reads input pixel s * p, the centre tap of a 3x3 conv with
  padding 1 and stride s (a stride-2 layer's shortcut subsamples). Upsampling layers run on
  the nearest-upsampled map, so their shortcut is the nearest-upsampled input.

As a matrix this is ``shortcut_matrix(Cout, Cin)``, a 1x1 operator: the packed format stores
nothing for it and every backend adds it to the layer's dense SMB + LRMB branch. Training
computes it with ``apply_shortcut`` (a copy, a mean or a repeat instead of a matmul).

``ShortcutConv2d`` and ``ShortcutLinear`` are the full-precision layers of a parent trained
with shortcuts (``ModelConfig.shortcuts``): ``y = layer(x) + shortcut(x)``, so the weight
learns a residual, and ``binarize()`` keeps the shortcut outside the 1-bit part: the
conversion is exact up to binarization.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import layout

__all__ = ["ShortcutConv2d", "ShortcutLinear", "apply_shortcut", "shortcut_matrix"]


def shortcut_matrix(cout: int, cin: int) -> torch.Tensor:
    """The shortcut as a (Cout, Cin) float32 matrix (module docstring; defined without torch
    in ``model.layout``, which the CPU runtime uses)."""
    return torch.from_numpy(layout.shortcut_matrix(cout, cin))


def apply_shortcut(x: torch.Tensor, cout: int, channel_dim: int, stride: int = 1,
                   matrix: torch.Tensor | None = None) -> torch.Tensor:
    """The shortcut of ``x`` to ``cout`` channels along ``channel_dim`` (1 for (B,C,H,W)
    maps, -1 for tokens), subsampled by ``stride`` (maps only): equal to applying
    ``shortcut_matrix(cout, Cin)`` there. Where it is a copy, a mean or a repeat no matrix is
    used; otherwise ``matrix`` (the layer's, on x's device), or one made for the call."""
    if stride != 1:
        x = x[:, :, ::stride, ::stride]
    cin = x.shape[channel_dim]
    if cin == cout:
        return x
    if cin < cout:  # repeat the input's channels, cut at cout
        reps = [1] * x.dim()
        reps[channel_dim] = -(-cout // cin)
        return x.repeat(reps).narrow(channel_dim, 0, cout)
    if cin % cout == 0:  # average the cin / cout groups i = g * cout + o
        dim = channel_dim % x.dim()
        shape = (*x.shape[:dim], cin // cout, cout, *x.shape[dim + 1:])
        return x.reshape(shape).mean(dim=dim)
    m = (shortcut_matrix(cout, cin) if matrix is None else matrix).to(x.device, x.dtype)
    return F.conv2d(x, m[:, :, None, None]) if channel_dim == 1 else F.linear(x, m)


def _matrix_if_needed(cout: int, cin: int) -> torch.Tensor | None:
    """The shortcut matrix where apply_shortcut needs one (Cin > Cout, not a multiple)."""
    return shortcut_matrix(cout, cin) if cin > cout and cin % cout else None


class ShortcutConv2d(nn.Conv2d):
    """A full-precision conv plus the fixed shortcut of its input: ``conv(x) + shortcut(x)``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("shortcut", _matrix_if_needed(self.out_channels, self.in_channels),
                             persistent=False)

    def forward(self, x):  # (B,Cin,H,W) -> (B,Cout,H/s,W/s)
        return super().forward(x) + apply_shortcut(x, self.out_channels, 1, self.stride[0],
                                                   self.shortcut)


class ShortcutLinear(nn.Linear):
    """A full-precision linear plus the fixed shortcut of its input."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("shortcut", _matrix_if_needed(self.out_features, self.in_features),
                             persistent=False)

    def forward(self, x):  # (..., Cin) -> (..., Cout)
        return super().forward(x) + apply_shortcut(x, self.out_features, -1,
                                                   matrix=self.shortcut)
