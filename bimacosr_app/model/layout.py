"""The Denoiser's structure as data, without torch: which layers it has, their names, sizes,
strides and shortcuts, and the full-precision tensors of its deploy form.

``DenoiserLayout(config)`` mirrors ``Denoiser.__init__`` (model/unet.py) name for name: the
packed checkpoint's specification (``checkpoint/format.py``) derives the tensor names and
shapes a file must hold from it, and the CPU runtime (``bimacosr_app.runtime``) builds its
network by walking it. tests/test_runtime.py checks it against the torch module for several
architectures.

Names are qualified module names of the Denoiser (``down.1.0.res.conv1``). Layer shapes:
a conv's weight is (Cout, Cin, k, k), a linear's (Cout, Cin); every layer has a bias.
``shortcut_matrix`` is the fixed shortcut operator of ``model/shortcut.py`` (DESIGN.md 2.8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ModelConfig

__all__ = ["DenoiserLayout", "LayerSpec", "ResBlockSpec", "StageSpec", "SwinSpec",
           "resolution_level", "shortcut_matrix"]


def resolution_level(name: str, deepest: int) -> int:
    """Resolution level of a Denoiser layer's output from its qualified name (0: LR
    resolution, each level halves it); ``deepest`` is the level of the middle block,
    ``len(widths) - 1``. ``downsample.i`` leaves level i for i + 1, ``upsample.i`` arrives at
    level i."""
    head, _, rest = name.partition(".")
    if head in ("down", "up", "fuse", "upsample", "downsample"):
        return int(rest.split(".")[0]) + (1 if head == "downsample" else 0)
    return deepest


def shortcut_matrix(cout: int, cin: int) -> np.ndarray:
    """The shortcut as a (Cout, Cin) float32 matrix: for Cin >= Cout input channel i feeds
    output i mod Cout and each output averages its inputs (Cin == Cout: the identity); for
    Cin < Cout output o copies input o mod Cin."""
    m = np.zeros((cout, cin), np.float32)
    if cin >= cout:
        i = np.arange(cin)
        m[i % cout, i] = 1.0
        return m / m.sum(axis=1, keepdims=True)
    o = np.arange(cout)
    m[o, o % cin] = 1.0
    return m


@dataclass(frozen=True)
class LayerSpec:
    """A Conv2d (``kernel`` 3 or 1, 'same' padding) or Linear (``kernel`` 0) of the network."""

    name: str
    cin: int
    cout: int
    kernel: int
    stride: int = 1
    #: a ShortcutConv2d / ShortcutLinear of a ``shortcuts`` architecture: ``layer(x) + S(x)``
    layer_shortcut: bool = False

    @property
    def linear(self) -> bool:
        return self.kernel == 0

    @property
    def weight_shape(self) -> tuple[int, ...]:
        k = self.kernel
        return (self.cout, self.cin) if self.linear else (self.cout, self.cin, k, k)


@dataclass(frozen=True)
class ResBlockSpec:
    """``prefix`` = the block's name (``down.0.1.res``). Norms ``norm1`` (Cin), ``norm2``
    (Cout); with ``units`` (a ``shortcuts`` architecture) the convs are residual units on the
    block's stream and there is no ``skip``; otherwise ``skip`` is a 1x1 conv where Cin != Cout
    (None: identity)."""

    prefix: str
    cin: int
    cout: int
    units: bool
    conv1: LayerSpec
    conv2: LayerSpec
    skip: LayerSpec | None


@dataclass(frozen=True)
class SwinSpec:
    """One (shifted) window attention block on ``dim`` channels: ``norm1``, ``attn.qkv``,
    ``attn.proj``, ``attn.rel_bias`` ((2 window - 1)^2, heads), ``norm2``, ``fc1``, ``fc2``."""

    prefix: str
    dim: int
    heads: int
    window: int
    shift: int
    hidden: int
    qkv: LayerSpec
    proj: LayerSpec
    fc1: LayerSpec
    fc2: LayerSpec


@dataclass(frozen=True)
class StageSpec:
    res: ResBlockSpec
    attn: SwinSpec | None


class DenoiserLayout:
    """The layers of ``Denoiser(config)`` (see the module docstring).

    Attributes: ``conv_in``, ``conv_out`` (full precision), ``down[level]`` and ``up[level]``
    (lists of stages), ``downsample[level]`` (3x3 stride 2, levels but the deepest),
    ``mid`` (a stage), ``upsample[level]`` (3x3 on the nearest-upsampled map of level + 1),
    ``fuse[level]`` (1x1 on concat(x, skip)), and the norms' names with their width in
    ``norms``.
    """

    def __init__(self, config: ModelConfig):
        self.config = cfg = config
        widths, deepest = cfg.widths, len(cfg.widths) - 1
        sc = cfg.shortcuts
        self.norms: dict[str, int] = {}
        self.conv_in = LayerSpec("conv_in", cfg.in_channels, widths[0], 3)
        self.down: list[list[StageSpec]] = []
        self.downsample: list[LayerSpec] = []
        ch = widths[0]
        for level, width in enumerate(widths):
            self.down.append([
                self._stage(f"down.{level}.{i}", ch if i == 0 else width, width,
                            level in cfg.attn_levels, i % 2 == 1)
                for i in range(cfg.res_blocks)])
            ch = width
            if level < deepest:
                self.downsample.append(LayerSpec(f"downsample.{level}.conv", width, width, 3,
                                                 stride=2, layer_shortcut=sc))
        self.mid = self._stage("mid", ch, ch, deepest in cfg.attn_levels, True)
        self.upsample = [LayerSpec(f"upsample.{level}.conv", widths[level + 1], widths[level],
                                   3, layer_shortcut=sc) for level in range(deepest)]
        self.fuse = [LayerSpec(f"fuse.{level}", 2 * w, w, 1, layer_shortcut=sc)
                     for level, w in enumerate(widths)]
        self.up: list[list[StageSpec]] = [
            [self._stage(f"up.{level}.{i}", widths[level], widths[level],
                         level in cfg.attn_levels, i % 2 == 0) for i in range(cfg.res_blocks)]
            for level in range(len(widths))]
        self.norms["norm_out"] = widths[0]
        self.conv_out = LayerSpec("conv_out", widths[0], cfg.out_channels, 3)

    def _stage(self, prefix: str, cin: int, cout: int, attention: bool,
               shifted: bool) -> StageSpec:
        cfg = self.config
        p = f"{prefix}.res"
        units = cfg.shortcuts
        skip = LayerSpec(f"{p}.skip", cin, cout, 1) if cin != cout and not units else None
        self.norms[f"{p}.norm1"], self.norms[f"{p}.norm2"] = cin, cout
        res = ResBlockSpec(p, cin, cout, units, LayerSpec(f"{p}.conv1", cin, cout, 3),
                           LayerSpec(f"{p}.conv2", cout, cout, 3), skip)
        if not attention:
            return StageSpec(res, None)
        a, dim, sc = f"{prefix}.attn", cout, cfg.shortcuts
        hidden = int(dim * cfg.mlp_ratio)
        self.norms[f"{a}.norm1"], self.norms[f"{a}.norm2"] = dim, dim
        swin = SwinSpec(a, dim, cfg.heads(dim), cfg.window,
                        cfg.window // 2 if shifted else 0, hidden,
                        LayerSpec(f"{a}.attn.qkv", dim, 3 * dim, 0, layer_shortcut=sc),
                        LayerSpec(f"{a}.attn.proj", dim, dim, 0, layer_shortcut=sc),
                        LayerSpec(f"{a}.fc1", dim, hidden, 0, layer_shortcut=sc),
                        LayerSpec(f"{a}.fc2", hidden, dim, 0, layer_shortcut=sc))
        return StageSpec(res, swin)

    def stages(self) -> list[StageSpec]:
        """Every stage: encoder levels, the middle, decoder levels (deepest first)."""
        return [*(s for level in self.down for s in level), self.mid,
                *(s for level in reversed(self.up) for s in level)]

    def binary_layers(self) -> list[LayerSpec]:
        """Every layer ``binarize()`` converts (all but ``conv_in`` and ``conv_out``)."""
        layers = list(self.downsample) + list(self.upsample) + list(self.fuse)
        for stage in self.stages():
            res = stage.res
            layers += [res.conv1, res.conv2, *([res.skip] if res.skip else [])]
            if stage.attn is not None:
                a = stage.attn
                layers += [a.qkv, a.proj, a.fc1, a.fc2]
        return layers

    def full_precision_tensors(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every tensor of the time-folded network outside the binarized
        layers: ``conv_in``, ``conv_out``, the LayerNorms' affines and ``rel_bias``."""
        shapes: dict[str, tuple[int, ...]] = {}
        for conv in (self.conv_in, self.conv_out):
            shapes[f"{conv.name}.weight"] = conv.weight_shape
            shapes[f"{conv.name}.bias"] = (conv.cout,)
        for name, width in self.norms.items():
            shapes[f"{name}.weight"] = shapes[f"{name}.bias"] = (width,)
        for stage in self.stages():
            if stage.attn is not None:
                a = stage.attn
                shapes[f"{a.prefix}.attn.rel_bias"] = ((2 * a.window - 1) ** 2, a.heads)
        return shapes
