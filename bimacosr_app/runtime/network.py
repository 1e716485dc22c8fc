"""The packed checkpoint's network and its one-step pipeline on NumPy and the native kernels.

:class:`PackedNetwork` builds the deploy form of ``Denoiser(architecture)`` (model/unet.py) from
a validated :class:`~bimacosr_app.checkpoint.PackedCheckpoint` by walking
``model.layout.DenoiserLayout``, and runs what ``model.pipeline.upscale_tile`` runs in torch:

    lr = 2 lr01 - 1;  z_y = PU4(bicubic_x4(lr));  x_T = z_y + kappa sqrt(eta_T) eps  (kappa > 0)
    x0 = z_y + f(concat(x_T / sqrt(kappa^2 eta_T + 1), lr))  (replicate-padded, cropped back)
    HR = clamp((PS4(x0) + 1) / 2, 0, 1)

Every map is NHWC float32 (runtime/layers.py has the layout rules). Differences from the torch
modules, each computing the same function:

* Every LayerNorm that feeds a binarized layer (the ResBlocks' with their SiLU, the Swin
  blocks' before qkv and fc1) runs inside that layer's ``norm_branch`` pass (a conv with two
  activation bases, stride 2 or no branch normalizes first); ResBlocks hand
  their skip (or a residual unit's stream) to conv2's epilogue.
* Swin blocks compute q, k, v, the projection and the MLP per pixel of the unshifted map (all
  per-token, so they commute with the roll and the windows); only ``window_attention`` visits
  the shifted windows, and writes each token's result at its own pixel.
* Upsampling convs read the nearest-upsampled map, and the decoder's fuse reads
  concat(x, skip), without materializing either (``BinaryLayer``'s ``upsample`` and ``x2``).
"""

from __future__ import annotations

import ctypes
import functools
import math

import numpy as np

from ..checkpoint.load import PackedCheckpoint
from ..model.config import LATENT_CHANNELS
from ..model.layout import (
    DenoiserLayout,
    LayerSpec,
    ResBlockSpec,
    SwinSpec,
    resolution_level,
    shortcut_matrix,
)
from .layers import BinaryLayer, FullPrecisionConv, LayerNorm, kernels
from .noise import position_noise

__all__ = ["PackedNetwork"]


def _stream_shortcut(x: np.ndarray, cout: int) -> np.ndarray:
    """S(x) of a residual unit (model/shortcut.py's ``apply_shortcut`` on channels): the map
    itself, its channels repeated (Cin < Cout), averaged in groups (Cin a multiple of Cout) or
    mixed by the shortcut matrix (any other Cin > Cout). (N, H, W, Cin) -> (N, H, W, Cout)."""
    cin = x.shape[-1]
    if cin == cout:
        return x
    if cin < cout:
        return np.ascontiguousarray(np.tile(x, (1, 1, 1, -(-cout // cin)))[..., :cout])
    if cin % cout == 0:
        return np.ascontiguousarray(x.reshape(*x.shape[:3], cin // cout, cout).mean(axis=3))
    w = np.ascontiguousarray(shortcut_matrix(cout, cin).T)[None, None]  # (1, 1, Cin, Cout)
    return kernels().dense_conv(x, w)


class _ResBlock:
    """LN -> SiLU -> conv1 -> LN (FiLM folded) -> SiLU -> conv2, plus the skip; as residual
    units with ``units``: u = S(x) + conv1(SiLU(LN x)), u + conv2(SiLU(LN u))."""

    def __init__(self, spec: ResBlockSpec, build):
        p, self.units, self.cout = spec.prefix, spec.units, spec.cout
        self.norm1, self.norm2 = build.norm(f"{p}.norm1"), build.norm(f"{p}.norm2")
        self.conv1, self.conv2 = build.layer(spec.conv1), build.layer(spec.conv2)
        self.skip = None if spec.skip is None else build.layer(spec.skip)

    def __call__(self, x: np.ndarray) -> np.ndarray:  # (N,H,W,Cin) -> (N,H,W,Cout)
        u = self.conv1(x, norm=(self.norm1, True),
                       residual=_stream_shortcut(x, self.cout) if self.units else None)
        if self.units:
            return self.conv2(u, norm=(self.norm2, True), residual=u)
        return self.conv2(u, norm=(self.norm2, True),
                          residual=x if self.skip is None else self.skip(x))


class _SwinBlock:
    """Pre-norm (shifted) window attention and MLP, both with residuals, on an (N,H,W,C) map
    whose sides are multiples of the window."""

    def __init__(self, spec: SwinSpec, build):
        p = spec.prefix
        self.heads, self.window, self.shift = spec.heads, spec.window, spec.shift
        self.scale = 1.0 / math.sqrt(spec.dim // spec.heads)  # SDPA's default, 1/sqrt(d)
        self.norm1, self.norm2 = build.norm(f"{p}.norm1"), build.norm(f"{p}.norm2")
        self.qkv, self.proj = build.layer(spec.qkv), build.layer(spec.proj)
        self.fc1, self.fc2 = build.layer(spec.fc1), build.layer(spec.fc2)
        # bias[h, t, u] = rel_bias[index(t, u), h], tokens t = i * window + j
        ws = spec.window
        i, j = np.divmod(np.arange(ws * ws), ws)
        index = (i[:, None] - i[None, :] + ws - 1) * (2 * ws - 1) + (j[:, None] - j[None, :]
                                                                     + ws - 1)  # (T, T)
        table = build.tensors[f"{p}.attn.rel_bias"].astype(np.float32)  # ((2ws-1)^2, heads)
        self.bias = np.ascontiguousarray(table[index].transpose(2, 0, 1))  # (heads, T, T)

    def __call__(self, t: np.ndarray) -> np.ndarray:  # (N,H,W,C) -> (N,H,W,C)
        k = kernels()
        qkv = self.qkv(t, norm=(self.norm1, False))  # (N, H, W, 3C)
        a = k.window_attention(qkv, self.bias, self.heads, self.window, self.shift, self.scale)
        del qkv
        t = self.proj(a, residual=t)
        h = self.fc1(t, norm=(self.norm2, False))  # (N, H, W, hidden)
        return self.fc2(k.gelu(h, out=h), residual=t)


class _Stage:
    def __init__(self, spec, build):
        self.res = _ResBlock(spec.res, build)
        self.attn = None if spec.attn is None else _SwinBlock(spec.attn, build)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = self.res(x)
        return x if self.attn is None else self.attn(x)


class _Builder:
    """Makes the layers of a checkpoint; knows which carry the fixed shortcut in their branch
    (with the binarization's ``shortcut``, every layer but a ``shortcuts`` architecture's
    ResBlock convs, residual units whose identity is the block's) and which have two activation
    bases (with its ``lr_act_bases`` 2, the convs at LR resolution)."""

    def __init__(self, checkpoint: PackedCheckpoint):
        self.tensors = checkpoint.tensors
        self.with_shortcut = checkpoint.binarization.get("shortcut", False)
        self.lr_act_bases = checkpoint.binarization.get("lr_act_bases", 1)
        self.deepest = len(checkpoint.architecture.widths) - 1
        self.units = checkpoint.architecture.shortcuts

    def norm(self, name: str) -> LayerNorm:
        return LayerNorm(name, self.tensors)

    def layer(self, spec: LayerSpec) -> BinaryLayer:
        shortcut = self.with_shortcut and (spec.layer_shortcut or not self.units)
        lr_conv = not spec.linear and resolution_level(spec.name, self.deepest) == 0
        return BinaryLayer(spec, self.tensors, shortcut, self.lr_act_bases if lr_conv else 1)


@functools.cache
def _keep_large_arrays_in_the_heap() -> None:
    """glibc serves allocations above M_MMAP_THRESHOLD (dynamic, at most 32 MiB by default)
    with fresh mmap pages and gives freed heap above M_TRIM_THRESHOLD back at once, so every
    layer's fresh output would fault in a page per 4 KiB on first touch (measured: 10-15 % of
    a 256 x 256 LR call). With both raised to 1 GiB freed arrays stay in the heap for the next
    layer's; the app's malloc_trim after every tile (``tiling.memory.release_free_memory``)
    still gives them back. Process-wide; elsewhere than glibc a no-op."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return
    for param in (-1, -3):  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
        mallopt(param, 1 << 30)


class PackedNetwork:
    """The packed checkpoint's one-step model on the native kernels (module docstring).
    RuntimeError when the kernels are unavailable."""

    def __init__(self, checkpoint: PackedCheckpoint):
        kernels()
        _keep_large_arrays_in_the_heap()
        self.checkpoint = checkpoint
        self.config = cfg = checkpoint.architecture
        self.diffusion = checkpoint.diffusion
        layout, build = DenoiserLayout(cfg), _Builder(checkpoint)
        tensors = checkpoint.tensors
        self.conv_in = FullPrecisionConv(layout.conv_in, tensors)
        self.down = [[_Stage(s, build) for s in level] for level in layout.down]
        self.downsample = [build.layer(s) for s in layout.downsample]
        self.mid = _Stage(layout.mid, build)
        self.upsample = [build.layer(s) for s in layout.upsample]
        self.fuse = [build.layer(s) for s in layout.fuse]
        self.up = [[_Stage(s, build) for s in level] for level in layout.up]
        self.norm_out = LayerNorm("norm_out", tensors)
        self.conv_out = FullPrecisionConv(layout.conv_out, tensors)

    @property
    def required_multiple(self) -> int:
        return self.config.required_multiple

    def denoise(self, x: np.ndarray, add: np.ndarray | None = None) -> np.ndarray:
        """f of the module docstring on the padded input: (N, H, W, in_channels), H and W
        multiples of ``required_multiple`` -> (N, H, W, out_channels), plus ``add`` (summed
        by ``conv_out``) if given."""
        x = self.conv_in(x)
        skips = []
        for level, stages in enumerate(self.down):
            for stage in stages:
                x = stage(x)
            skips.append(x)
            if level < len(self.downsample):
                x = self.downsample[level](x)
        x = self.mid(x)
        for level in reversed(range(len(self.up))):
            if level < len(self.upsample):
                x = self.upsample[level](x, upsample=True)
            x = self.fuse[level](x, x2=skips[level])
            skips[level] = None
            for stage in self.up[level]:
                x = stage(x)
        return self.conv_out(self.norm_out(x, silu=True, in_place=True), add=add)

    def upscale(self, lr01: np.ndarray, top: int = 0, left: int = 0,
                seed: int = 0) -> np.ndarray:
        """lr01 (N, 3, h, w) float32 in [0, 1] at absolute LR position (top, left) ->
        (N, 3, 4h, 4w) float32 in [0, 1]. The noise depends only on (seed, absolute position),
        so tiles agree with the whole image; a schedule with kappa = 0 draws none.

        The kernels build the padded input and z_y in one pass (``one_step_input``), conv_out
        adds z_y (the residual; its padded part is cropped with the rest), and
        ``latent_image`` crops, pixel-shuffles and maps the result to [0, 1]."""
        k, d = kernels(), self.diffusion
        h, w = lr01.shape[2:]
        lr = np.ascontiguousarray(lr01.transpose(0, 2, 3, 1)) * np.float32(2) - np.float32(1)
        eps = None if d.kappa == 0 else position_noise(seed, top, left, h, w, LATENT_CHANNELS)
        m = self.required_multiple
        x, z_y = k.one_step_input(lr, eps, d.prior_noise_scale(), d.one_step_input_scale(),
                                  h + -h % m, w + -w % m)  # (N, H, W, 51), (N, H, W, 48)
        out = self.denoise(x, add=z_y if self.config.residual else None)
        return k.latent_image(out, h, w)
