"""The packed network's layers on NumPy arrays and the native kernels (no torch).

Layout rules (kernels/README.md, DESIGN.md 3):

* Activations are NHWC float32 arrays, C-contiguous: (N, H, W, C). A linear is a 1x1 conv on
  such a map (one token per pixel).
* Sign bits of ``x - s`` are packed along channels at run time by ``pack_activations`` (bit j
  of word w = channel 64w + j, 1 = negative, sign(0) = +1, pad bits 0) with
  ``alpha = mean |x - s|`` per pixel; s is the layer's activation threshold (none: 0).
* Weights come packed from the checkpoint: 3x3 ``uint64[Cout, 3, 3, ceil(Cin/64)]``, 1x1 and
  linear ``uint64[Cout, ceil(Cin/64)]``; they are prepared once for the active kernel
  (``PreparedWeights``) and again after a ``set_kernel`` to another kernel.
* A layer computes ``RPReLU(beta * popcount-conv + bias) + B x [+ residual]`` where
  ``B = SMB + LRMB (+ the fixed shortcut)`` runs in its structured form on the full-precision
  input, 1x1 at the layer's stride, by the kernels' ``branch``: LRMB as the float32 factors
  ``up @ (down @ x)``, SMB and the shortcut as one sparse (CSR) matrix, rank * (Cin + Cout) +
  nnz multiply-adds per pixel instead of the Cin * Cout of a dense B (measured 1.3-5x faster
  from 128 channels on, as fast at 64). That product (plus the residual, summed by the same
  call) is a fresh array that the binary kernel takes as its epilogue's ``add`` and ``out``:
  it works in place, so a layer allocates one output. Where the layer's input is a
  LayerNorm of a map (ResBlock convs, attention qkv, MLP fc1) the kernels normalize, pack and
  run the branch in one pass (``norm_branch``): the normalized map is never written (except
  for a conv with two activation bases, stride 2 or no branch, which normalizes first).
* With two activation bases (level-0 convs of a ``lr_act_bases`` 2 file) the layer packs a
  second base from the first's residual (``pack_activations(..., bases=2)``) and the binary
  kernel sums both products with the same weights.

No NumPy BLAS call (``@``, ``np.dot``, ``np.matmul``) runs here or in the network: numpy's
OpenBLAS threads spin for a while after every call and take the cores the kernels need
(measured: a LayerNorm right after an OpenBLAS GEMM ran at half speed). Every product runs
on the kernels' own threads.
"""

from __future__ import annotations

import numpy as np

from ..model.layout import LayerSpec, shortcut_matrix
from ..native import load_kernels

__all__ = ["BinaryLayer", "FullPrecisionConv", "LayerNorm", "kernels", "nearest2x"]

EPS = 1e-5  # every LayerNorm of the network (torch's default)


def kernels():
    """The native module (RuntimeError when it is unavailable)."""
    module = load_kernels()
    if module is None:
        raise RuntimeError("the native kernels (bimacosr_app._bitkernels) are not available")
    return module


def _f32(a: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy of a checkpoint tensor (float16 values widen exactly)."""
    return np.ascontiguousarray(a, dtype=np.float32)


def nearest2x(a: np.ndarray) -> np.ndarray:
    """(N, H, W, ...) -> (N, 2H, 2W, ...), nearest neighbour: a fresh C-contiguous copy."""
    n, h, w, *rest = a.shape
    return np.broadcast_to(a[:, :, None, :, None], (n, h, 2, w, 2, *rest)).reshape(
        n, 2 * h, 2 * w, *rest)


class LayerNorm:
    """LayerNorm over the channels of a map (``P.weight``, ``P.bias`` of the checkpoint)."""

    def __init__(self, name: str, tensors: dict[str, np.ndarray]):
        self.gamma = _f32(tensors[f"{name}.weight"])  # (C,)
        self.beta = _f32(tensors[f"{name}.bias"])  # (C,)

    def __call__(self, x: np.ndarray, silu: bool = False, in_place: bool = False) -> np.ndarray:
        """(..., C) -> (..., C), then SiLU if ``silu``; ``in_place``: over x itself (the caller
        has no further use for it)."""
        return kernels().layer_norm(x, self.gamma, self.beta, EPS, silu,
                                    out=x if in_place else None)


class FullPrecisionConv:
    """``conv_in`` / ``conv_out``: a float32 3x3 conv, 'same' zero padding, with bias."""

    def __init__(self, spec: LayerSpec, tensors: dict[str, np.ndarray]):
        w = _f32(tensors[f"{spec.name}.weight"])  # (Cout, Cin, 3, 3)
        self.weight = np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # (3, 3, Cin, Cout)
        self.bias = _f32(tensors[f"{spec.name}.bias"])  # (Cout,)

    def __call__(self, x: np.ndarray, add: np.ndarray | None = None) -> np.ndarray:
        """(N, H, W, Cin) -> (N, H, W, Cout), plus ``add`` if given."""
        return kernels().dense_conv(x, self.weight, self.bias, add=add)


class BinaryLayer:
    """A binarized layer of the packed checkpoint (module docstring): a conv (3x3 stride 1 or
    2, 1x1) with RPReLU, or a linear (a 1x1 conv without RPReLU), on NHWC maps.

    ``shortcut``: the layer's branch also holds ``shortcut_matrix(Cout, Cin)`` (the checkpoint's
    binarization and architecture say which layers have one; see ``runtime.network``).
    ``bases``: its activation bases, 1 or 2 (a conv at LR resolution of a checkpoint with
    ``lr_act_bases`` 2): the second is the sign of the first's residual, with the same weights.
    """

    def __init__(self, spec: LayerSpec, tensors: dict[str, np.ndarray], shortcut: bool,
                 bases: int = 1):
        if bases not in (1, 2) or (bases == 2 and spec.linear):
            kind = "linear" if spec.linear else "conv"
            raise ValueError(f"{spec.name}: a conv has 1 or 2 activation bases, a linear 1 "
                             f"(got {bases} for a {kind})")
        p, self.spec, self.bases = spec.name, spec, bases
        self.cin, self.cout = spec.cin, spec.cout
        self.kernel_size = 1 if spec.linear else spec.kernel
        self.stride = spec.stride
        self.wbits = np.ascontiguousarray(tensors[f"{p}.bits"])  # (Cout[, 3, 3], Cw) uint64
        if self.kernel_size == 1:
            self.wbits = self.wbits.reshape(self.cout, -1)
        self.beta = _f32(tensors[f"{p}.beta"])  # (Cout,)
        self.bias = _f32(tensors[f"{p}.bias"])  # (Cout,)
        self.rprelu = None if spec.linear else tuple(
            _f32(tensors[f"{p}.rprelu.{f}"]) for f in ("shift_in", "slope", "shift_out"))
        shift = tensors.get(f"{p}.act_shift")
        self.shift = None if shift is None else _f32(shift)  # (Cin,)
        self.branch = self._branch(tensors, shortcut)
        self.weights = self._prepare(kernels())

    def _branch(self, tensors: dict[str, np.ndarray], shortcut: bool) -> tuple | None:
        """The ``branch`` kernel's operands (down (r, Cin), up (Cout, r), and the CSR matrix
        row (Cout + 1,), col, val of SMB's entries and the shortcut's), or None without any
        branch. r = 0 without LRMB; an SMB position and a shortcut entry may coincide (the
        kernel sums both)."""
        p, cout, cin = self.spec.name, self.cout, self.cin
        if f"{p}.lrmb.up" in tensors:
            down, up = _f32(tensors[f"{p}.lrmb.down"]), _f32(tensors[f"{p}.lrmb.up"])
        else:
            down, up = np.zeros((0, cin), np.float32), np.zeros((cout, 0), np.float32)
        rows, cols, vals = [], [], []
        if f"{p}.smb.index" in tensors:  # flat positions o * Cin + i
            o, i = np.divmod(tensors[f"{p}.smb.index"].astype(np.int64), cin)
            rows.append(o), cols.append(i), vals.append(_f32(tensors[f"{p}.smb.value"]))
        if shortcut:
            m = shortcut_matrix(cout, cin)
            o, i = np.nonzero(m)
            rows.append(o), cols.append(i), vals.append(m[o, i])
        if not rows and not down.size:
            return None
        o, i, v = (np.concatenate(a) if a else np.zeros(0) for a in (rows, cols, vals))
        order = np.argsort(o, kind="stable")
        row = np.zeros(cout + 1, np.int32)
        row[1:] = np.cumsum(np.bincount(o.astype(np.int64), minlength=cout))
        return (down, up, row, np.ascontiguousarray(i[order], dtype=np.int32),
                np.ascontiguousarray(v[order], dtype=np.float32))

    def _prepare(self, k):
        """``wbits`` prepared for the active kernel (a ``PreparedWeights``)."""
        prepare = k.prepare_conv3x3_weights if self.kernel_size == 3 else k.prepare_gemm_weights
        return prepare(self.wbits, self.cin)

    def _active_weights(self, k):
        """``weights``, prepared again first if ``set_kernel`` switched kernels since."""
        if self.weights.kernel != k.kernel_name():
            self.weights = self._prepare(k)
        return self.weights

    def __call__(self, x: np.ndarray, residual: np.ndarray | None = None,
                 upsample: bool = False, x2: np.ndarray | None = None,
                 norm: tuple[LayerNorm, bool] | None = None) -> np.ndarray:
        """(N, H, W, Cin) -> (N, Ho, Wo, Cout), ``Ho = (H - 1) // stride + 1``, plus
        ``residual`` (N, Ho, Wo, Cout) if given.

        ``upsample``: the layer's input is the nearest-2x-upsampled x (3x3 stride 1 only). The
        packing and the branch are per pixel, so they commute with nearest upsampling: they run
        on x and their results are upsampled (a quarter of the branch's work).

        ``x2``: the layer's input is the channel concatenation [x, x2] (1x1 only, e.g. the
        decoder's fuse of concat(x, skip)), never materialized where x's channels are a
        multiple of 64 (the packed words of the two halves concatenate); the branch reads both
        halves itself.

        ``norm`` = (LayerNorm, silu): the layer's input is that norm of x (then SiLU). With a
        branch, stride 1 and one activation base, ``norm_branch`` normalizes, packs and runs the
        branch in one pass over x, bit-identical to the three calls, and the normalized map is
        never written.
        """
        k, s = kernels(), self.stride
        if upsample and (self.kernel_size, s, residual) != (3, 1, None):
            raise ValueError("upsample needs a 3x3 stride-1 layer and no residual")
        if x2 is not None and (self.kernel_size, s) != (1, 1):
            raise ValueError("x2 needs a 1x1 stride-1 layer")
        if norm is not None and (upsample or x2 is not None):
            raise ValueError("norm takes neither upsample nor x2")
        if norm is not None and (self.branch is None or s != 1 or self.bases == 2):
            x, norm = norm[0](x, silu=norm[1]), None  # normalized first, then as any input
        n, h, w = x.shape[:3]
        if upsample:
            h, w = 2 * h, 2 * w
        ho, wo = (h - 1) // s + 1, (w - 1) // s + 1
        bits, second = None, {}  # second: the second base's bits2 and alpha2, when it has one
        if norm is not None:  # fresh y: the binary kernel's add and out
            ln, silu = norm
            y, bits, alpha = k.norm_branch(x, ln.gamma, ln.beta, EPS, silu, self.shift,
                                           *self.branch, residual)
            add = out = y
        elif self.branch is not None:
            y = k.branch(x, *self.branch, s, x2, None if upsample else residual)
            if upsample:
                y = nearest2x(y)
            add = out = y
        else:
            add, out = residual, np.empty((n, ho, wo, self.cout), np.float32)
        weights = self._active_weights(k)
        if self.kernel_size == 3:
            if bits is None:
                bits, alpha, second = self._pack(k, x)  # (N,H,W,Cw), (N,H,W)
            if upsample:
                bits, alpha = nearest2x(bits), nearest2x(alpha)
                second = {key: nearest2x(v) for key, v in second.items()}
            return k.binary_conv3x3(bits, alpha, weights, self.cin, self.beta, self.bias, s,
                                    self.rprelu, add, out, **second)
        if bits is None:
            xs = x if s == 1 else np.ascontiguousarray(x[:, ::s, ::s])  # (N, Ho, Wo, C1)
            if x2 is not None and x.shape[3] % 64:
                xs, x2 = np.concatenate([xs, x2], axis=3), None
            bits, alpha, second = self._pack(k, xs, x2)
        m = n * ho * wo
        second = {key: v.reshape(m, -1) if key == "bits2" else v.reshape(m)
                  for key, v in second.items()}
        k.binary_gemm(bits.reshape(m, -1), alpha.reshape(m), weights, self.cin, self.beta,
                      self.bias, self.rprelu, None if add is None else add.reshape(m, -1),
                      out.reshape(m, -1), **second)
        return out

    def _pack(self, k, x: np.ndarray, x2: np.ndarray | None = None) -> tuple:
        """(bits, alpha, second) of the layer's input: ``second`` holds the second base's
        ``bits2`` and ``alpha2`` (the binary kernels' keyword arguments), empty with one."""
        if self.bases == 1:
            bits, alpha = k.pack_activations(x, x2, self.shift)
            return bits, alpha, {}
        bits, alpha, bits2, alpha2 = k.pack_activations(x, x2, self.shift, bases=2)
        return bits, alpha, {"bits2": bits2, "alpha2": alpha2}
