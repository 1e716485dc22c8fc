"""The torch-assisted packed network the ``cpu-packed`` backend ran before the native runtime
(``bimacosr_app.runtime``, commit ``fe5b918`` and earlier), kept as ``benchmarks.end_to_end``'s
baseline: the runtime must be at least as fast (issue 15).

:func:`pack_model` replaces, in place, every :class:`BinaryConv2d` (3x3 stride 1/2, 1x1) and
:class:`BinaryLinear` of a binarized Denoiser (training or deploy form, time path folded or
not) by a module that calls ``bimacosr_app._bitkernels``; everything else (conv_in/conv_out,
attention, activations other than SiLU, up/downsampling glue, the Denoiser's forward) stays
torch, except the LayerNorms: every ``LayerNorm2d`` and ``nn.LayerNorm`` runs on the kernels'
``layer_norm``, and each ResBlock computes ``SiLU(norm(x))`` in one native pass and hands its
skip to ``conv2``'s epilogue; each Upsample's conv reads the nearest-upsampled input and each
decoder fuse the concatenation (x, skip) without materializing them (modules and parameters
stay in place: only their classes change).

Layout rules (kernels/README.md, DESIGN.md 3):

* The network runs channels_last: a (B,C,H,W) tensor whose memory is NHWC, so
  ``x.permute(0, 2, 3, 1)`` is a C-contiguous NHWC view and the kernels' NHWC output
  ``torch.from_numpy(y).permute(0, 3, 1, 2)`` is again channels_last (no copies).
* Activations are NHWC float32; sign bits of ``x - s`` are packed along channels (bit j of word
  w = channel 64w + j, 1 = negative, sign(0) = +1, pad bits 0), alpha = mean |x - s| over
  channels per pixel (per token for linears), both by ``pack_activations`` at run time; s is
  the layer's activation threshold (none: 0).
* Weights are packed once here: 3x3 ``uint64[Cout, 3, 3, ceil(Cin/64)]`` (``sign(W_b)``
  permuted to (Cout, kh, kw, Cin)), 1x1 and linear ``uint64[Cout, ceil(Cin/64)]``
  (``wbits``); ``beta_o = mean |W_b|``. They are also prepared once here for the active kernel
  (``weights``: ``prepare_conv3x3_weights`` / ``prepare_gemm_weights``, the kernel's own
  repacked layout), which the kernel calls take; after a ``set_kernel`` to another kernel a
  layer prepares them again from ``wbits`` on its next forward.
* Each layer computes ``RPReLU(beta * popcount-conv + bias) + B x [+ residual]`` in the kernel
  epilogue, where ``B = SMB + LRMB`` is one dense (Cout, Cin) matrix applied in torch, float32,
  as one op on the full-precision input (a 1x1 conv with the layer's stride for convs, a matmul
  for linears; a residual, e.g. a ResBlock's skip, is added to its output in place). That
  fresh NHWC tensor is both the kernel's ``add`` and its ``out``: the epilogue works in place,
  so a layer allocates one output.

The kernels take ``torch.get_num_threads()`` threads before every forward of the packed model,
so one setting (``torch.set_num_threads``) governs both; they run on torch's own OpenMP team
where one is loaded (kernels/README.md, "Threads").
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bimacosr_app.checkpoint.bitpack import pack_signs
from bimacosr_app.model.binary import BinaryConv2d, BinaryLinear
from bimacosr_app.model.unet import Denoiser, LayerNorm2d, ResBlock, Upsample
from bimacosr_app.native import load_kernels

__all__ = ["pack_model"]


def _f32(t: torch.Tensor) -> np.ndarray:
    """A detached, C-contiguous float32 NumPy copy of a parameter."""
    return np.ascontiguousarray(t.detach().to(torch.float32).cpu().numpy())


def _kernels():
    """The native module (RuntimeError when it is unavailable)."""
    kernels = load_kernels()
    if kernels is None:
        raise RuntimeError("the native kernels (bimacosr_app._bitkernels) are not available")
    return kernels


class _PackedLayer(nn.Module):
    """Constants shared by packed convs and linears (NumPy arrays, not buffers, so that
    ``model.to(memory_format=...)`` leaves the bit layout alone). Subclasses hand their packed
    sign bits to ``_set_weights``."""

    def __init__(self, layer: BinaryConv2d | BinaryLinear):
        super().__init__()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        with torch.no_grad():
            self.beta = _f32(layer.beta())  # (Cout,)
        self.bias = None if layer.bias is None else _f32(layer.bias)  # (Cout,)
        self.shift = None if layer.act_shift is None else _f32(layer.act_shift)  # (Cin,)
        with torch.no_grad():
            m = layer.branch_matrix()  # SMB + LRMB, (Cout, Cin) or None
        self.branch = None if m is None else m.detach().to(torch.float32).cpu().contiguous()

    def _set_weights(self, wbits: np.ndarray) -> None:
        """Keep the packed sign bits ``wbits`` (3x3 conv: (Cout, 3, 3, Cw); 1x1 conv, linear:
        (Cout, Cw)) and, as ``weights``, them prepared for the active kernel."""
        self.wbits = wbits
        self.weights = self._prepare_weights(_kernels())

    def _prepare_weights(self, kernels):
        """``wbits`` prepared for the active kernel (a ``PreparedWeights``)."""
        prepare = kernels.prepare_conv3x3_weights if self.wbits.ndim == 4 \
            else kernels.prepare_gemm_weights
        return prepare(self.wbits, self.in_features)

    def _active_weights(self, kernels):
        """``weights``, prepared again first if ``set_kernel`` switched kernels since."""
        if self.weights.kernel != kernels.kernel_name():
            self.weights = self._prepare_weights(kernels)
        return self.weights

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, "
                f"branches={self.branch is not None}")


def _rows(t: torch.Tensor) -> torch.Tensor:
    """A (B,C,H,W) channels_last tensor as (B*H*W, C) rows of its NHWC memory (a view)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    """t detached, in channels_last memory (a copy only where it is not)."""
    t = t.detach()
    return t if t.is_contiguous(memory_format=torch.channels_last) else \
        t.contiguous(memory_format=torch.channels_last)


def _nearest2x(a: np.ndarray) -> np.ndarray:
    """(B, H, W, ...) -> (B, 2H, 2W, ...), nearest-neighbour: a fresh C-contiguous copy."""
    b, h, w, *rest = a.shape
    return np.broadcast_to(a[:, :, None, :, None], (b, h, 2, w, 2, *rest)).reshape(
        b, 2 * h, 2 * w, *rest)


class PackedConv2d(_PackedLayer):
    """A BinaryConv2d (k = 3, stride 1 or 2, padding 1; or k = 1, padding 0) on packed bits.

    (B, Cin, H, W) channels_last -> (B, Cout, Ho, Wo) channels_last, ``Ho = (H - 1) // s + 1``,
    plus ``residual`` (B, Cout, Ho, Wo) if given. The branch is a 1x1 conv with the layer's
    stride (oneDNN, channels_last): it reads the stride-sampled pixels without a copy and is
    faster than a matmul at these sizes (in the network: 90 ms against 130 ms for MKL's).
    """

    def __init__(self, layer: BinaryConv2d):
        super().__init__(layer)
        k, self.stride = layer.kernel_size, layer.stride
        if k not in (1, 3) or self.stride not in (1, 2):
            raise ValueError(f"no packed kernel for {layer}")
        self.kernel_size, self.bases = k, layer.act_bases
        w = layer.weight.detach().to(torch.float32).cpu().numpy()  # (Cout, Cin, k, k)
        self._set_weights(pack_signs(w.transpose(0, 2, 3, 1) if k == 3 else w[:, :, 0, 0]))
        r = layer.rprelu
        self.rprelu = (_f32(r.shift_in), _f32(r.slope), _f32(r.shift_out))
        if self.branch is not None:  # (Cout, Cin, 1, 1) channels_last
            self.branch = self.branch[:, :, None, None].contiguous(
                memory_format=torch.channels_last)

    def _add_and_out(self, x: torch.Tensor, residual: torch.Tensor | None, rows: int,
                     upsample: bool, x2: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The epilogue's ``add`` and the ``out`` tensor, (rows, Cout) NHWC rows each. With a
        branch, both are one fresh tensor (the epilogue works in place): the branch of the
        channels_last input x (upsampled after it if ``upsample``), plus the residual (rows,
        Cout) in place; without, the residual (or None) and a fresh output. With ``x2`` (the
        input's channels after x's, stride 1), the branch is the 1x1 conv of x with the
        matrix's first columns plus, in place, the product of x2's rows with the others."""
        if self.branch is None:
            return residual, x.new_empty(rows, self.out_features)
        c1 = x.shape[1]
        y = F.conv2d(x, self.branch if x2 is None else self.branch[:, :c1], stride=self.stride)
        if upsample:
            y = F.interpolate(y, scale_factor=2, mode="nearest")
        # (oneDNN returns NCHW-contiguous for some degenerate shapes, e.g. Cin = 1: copy then)
        add = _rows(y).contiguous()
        if x2 is not None:
            add.addmm_(_rows(x2), self.branch[:, c1:, 0, 0].t())  # MKL, beta = 1: in place
        if residual is not None:
            add.add_(residual)
        return add, add

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None,
                upsample: bool = False, x2: torch.Tensor | None = None) -> torch.Tensor:
        """``upsample``: the layer's input is ``F.interpolate(x, scale_factor=2,
        mode="nearest")`` (3x3 stride 1 only). The packing and the branch are per pixel, so
        they commute with nearest upsampling: they run on x, and their results are upsampled
        (a quarter of the branch's work, and Cout float channels copied instead of Cin).

        ``x2``: the layer's input is ``torch.cat([x, x2], dim=1)`` (1x1 stride 1 only, e.g. the
        decoder's fuse of concat(x, skip)). Where x's channel count is a multiple of 64 the
        concatenation is never materialized: the two halves' packed words concatenate (one
        ``pack_activations`` over both: bit-identical bits and alpha), and the branch's matrix
        splits into two products summed into one output (equal up to float rounding)."""
        s, kernels = self.stride, _kernels()
        if upsample and (self.kernel_size, s) != (3, 1):
            raise ValueError("upsample=True needs a 3x3 stride-1 layer")
        if x2 is not None and (self.kernel_size, s) != (1, 1):
            raise ValueError("x2 needs a 1x1 stride-1 layer")
        if x2 is not None and x.shape[1] % 64:
            x, x2 = torch.cat([x, x2], dim=1), None
        x = _channels_last(x)
        xh = x.permute(0, 2, 3, 1)  # (B, H, W, Cin), C-contiguous
        n, h, w = xh.shape[:3]
        if upsample:
            h, w = 2 * h, 2 * w
        ho, wo = (h - 1) // s + 1, (w - 1) // s + 1
        x2 = None if x2 is None else _channels_last(x2)
        res = None if residual is None else _rows(residual.detach()).contiguous()
        add, out = self._add_and_out(x, res, n * ho * wo, upsample, x2)
        weights = self._active_weights(kernels)
        if self.kernel_size == 3:
            shape = (n, ho, wo, self.out_features)
            # bits (B,H,W,Cw), alpha (B,H,W)
            bits, alpha, second = self._pack(kernels, xh.numpy())
            if upsample:
                bits, alpha = _nearest2x(bits), _nearest2x(alpha)
                second = {key: _nearest2x(v) for key, v in second.items()}
            kernels.binary_conv3x3(bits, alpha, weights, self.in_features, self.beta,
                                   self.bias, s, self.rprelu,
                                   None if add is None else add.view(shape), out.view(shape),
                                   **second)
        else:
            xs = xh if s == 1 else xh[:, ::s, ::s].contiguous()  # (B, Ho, Wo, Cin)
            bits, alpha, second = self._pack(
                kernels, xs.numpy(), None if x2 is None else x2.permute(0, 2, 3, 1).numpy())
            m = n * ho * wo
            second = {key: v.reshape(m, -1) if key == "bits2" else v.reshape(m)
                      for key, v in second.items()}
            kernels.binary_gemm(bits.reshape(m, -1), alpha.reshape(-1), weights,
                                self.in_features, self.beta, self.bias, self.rprelu, add, out,
                                **second)
        return out.view(n, ho, wo, self.out_features).permute(0, 3, 1, 2)

    def _pack(self, kernels, x: np.ndarray, x2: np.ndarray | None = None) -> tuple:
        """(bits, alpha, second): ``second`` the second activation base's ``bits2`` and
        ``alpha2`` keyword arguments of the binary kernels, empty with one base."""
        if self.bases == 1:
            return (*kernels.pack_activations(x, x2, self.shift), {})
        bits, alpha, bits2, alpha2 = kernels.pack_activations(x, x2, self.shift, bases=2)
        return bits, alpha, {"bits2": bits2, "alpha2": alpha2}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, k={self.kernel_size}, stride={self.stride}"


class PackedLinear(_PackedLayer):
    """A BinaryLinear over the last dim on packed bits: (..., Cin) -> (..., Cout), plus
    ``residual`` (..., Cout) if given."""

    def __init__(self, layer: BinaryLinear):
        super().__init__(layer)
        self._set_weights(pack_signs(layer.weight.detach().to(torch.float32).cpu().numpy()))
        if self.branch is not None:
            self.branch = self.branch.t()  # (Cin, Cout), a transposed view

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        kernels, lead = _kernels(), x.shape[:-1]
        x2d = x.detach().reshape(-1, self.in_features)  # (M, Cin), tokens as rows
        if not x2d.is_contiguous():
            x2d = x2d.contiguous()
        m = x2d.shape[0]
        res = None if residual is None else \
            residual.detach().reshape(m, self.out_features).contiguous()
        if self.branch is None:  # the epilogue's add; a fresh one is also the output
            add, out = res, x2d.new_empty(m, self.out_features)
        else:
            add = out = torch.mm(x2d, self.branch) if res is None else \
                torch.addmm(res, x2d, self.branch)  # one MKL call into a fresh (M, Cout)
        bits, alpha = kernels.pack_activations(x2d.numpy().reshape(m, 1, 1, -1),
                                               shift=self.shift)
        kernels.binary_gemm(bits.reshape(m, -1), alpha.reshape(m), self._active_weights(kernels),
                            self.in_features, self.beta, self.bias, None, add, out)  # (M, Cout)
        return out.view(*lead, self.out_features)


def _layer_norm(norm: nn.LayerNorm, x: torch.Tensor, silu: bool = False,
                in_place: bool = False) -> torch.Tensor:
    """``norm`` over the last dim of x (then SiLU if ``silu``) on the native kernels; with
    ``in_place``, over x itself (the caller owns x and has no further use for it) when x is
    contiguous, saving a fresh output (page faults, for the large ones)."""
    if not x.is_contiguous():
        x, in_place = x.contiguous(), True  # a copy of our own
    xn = x.detach().numpy()
    y = _kernels().layer_norm(xn, norm.weight.detach().numpy(), norm.bias.detach().numpy(),
                              norm.eps, silu, out=xn if in_place else None)
    return x if in_place else torch.from_numpy(y)


def _layer_norm2d(norm: LayerNorm2d, x: torch.Tensor, silu: bool = False,
                  in_place: bool = False) -> torch.Tensor:
    """LayerNorm2d (over channels; then SiLU if ``silu``): (B,C,H,W) -> (B,C,H,W)
    channels_last, computed on the NHWC view of a channels_last input without copies
    (``in_place`` as for _layer_norm)."""
    return _layer_norm(norm, x.permute(0, 2, 3, 1), silu, in_place).permute(0, 3, 1, 2)


class _NativeLayerNorm(nn.LayerNorm):
    """nn.LayerNorm (over the last dim) on the native kernels."""

    def forward(self, x):
        return _layer_norm(self, x)


class _NativeLayerNorm2d(LayerNorm2d):
    """LayerNorm2d on the native kernels."""

    def forward(self, x):
        return _layer_norm2d(self, x)


class _PackedResBlock(ResBlock):
    """ResBlock with ``SiLU(norm(.))`` in one native pass (norm2's over conv1's output in
    place, except in residual units, where conv1's output u is conv2's residual) and the skip
    (u) summed by ``conv2``'s epilogue, a residual unit's S(x) by ``conv1``'s (pack_model
    switches a ResBlock only when its convs are PackedConv2d): same submodules, same
    function."""

    def forward(self, x, temb):
        a = _layer_norm2d(self.norm1, x, silu=True)
        u = self.conv1(a, residual=self.stream_shortcut(x) if self.units else None)
        if self.film is None:  # time path folded: FiLM lives in norm2's affine
            h = _layer_norm2d(self.norm2, u, silu=True, in_place=not self.units)
        else:
            scale, shift = self.film_terms(temb)
            h = F.silu(_layer_norm2d(self.norm2, u) * (1 + scale) + shift)
        return self.conv2(h, residual=u if self.units else self.skip(x))


class _PackedUpsample(Upsample):
    """Upsample whose packed conv reads the nearest-upsampled input without materializing it
    (PackedConv2d's ``upsample``): same submodule, same function."""

    def forward(self, x):
        return self.conv(x, upsample=True)


class _PackedDenoiser(Denoiser):
    """Denoiser whose decoder hands concat(x, skip) to a packed fuse layer as its two halves
    (PackedConv2d's ``x2``), which never materializes it: same modules, same function."""

    def fuse_skip(self, level, x, skip):
        fuse = self.fuse[level]
        if isinstance(fuse, PackedConv2d):
            return fuse(x, x2=skip)
        return super().fuse_skip(level, x, skip)


def _sync_threads(module: nn.Module, args) -> None:
    """Forward pre-hook: the kernels' pool takes torch's thread count."""
    _kernels().set_num_threads(torch.get_num_threads())


def pack_model(model: nn.Module) -> nn.Module:
    """Convert a binarized Denoiser in place to the packed CPU form and return it.

    Every BinaryConv2d becomes a :class:`PackedConv2d` and every BinaryLinear a
    :class:`PackedLinear`; the Denoiser (its decoder's fuse), ResBlocks, Upsamples and
    LayerNorms (with affine parameters) switch to their packed forwards (same modules and
    parameters, another class); the model is put in eval mode, frozen, moved to channels_last
    and gets a forward pre-hook that gives the kernels torch's thread count. Run it under
    ``torch.inference_mode()``. RuntimeError when the native kernels are unavailable.
    """
    _kernels()
    model.eval().requires_grad_(False)
    for name, module in list(model.named_modules()):
        if isinstance(module, BinaryConv2d):
            packed = PackedConv2d(module)
        elif isinstance(module, BinaryLinear):
            packed = PackedLinear(module)
        else:
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, packed)
    for module in model.modules():
        if type(module) is Denoiser:
            module.__class__ = _PackedDenoiser
        elif type(module) is ResBlock and isinstance(module.conv1, PackedConv2d) \
                and isinstance(module.conv2, PackedConv2d):
            module.__class__ = _PackedResBlock
        elif type(module) is Upsample and isinstance(module.conv, PackedConv2d):
            module.__class__ = _PackedUpsample
        elif type(module) in (nn.LayerNorm, LayerNorm2d) and module.weight is not None \
                and module.bias is not None:
            module.__class__ = _NativeLayerNorm2d if type(module) is LayerNorm2d \
                else _NativeLayerNorm
    model.to(memory_format=torch.channels_last)
    model.register_forward_pre_hook(_sync_threads)
    return model
