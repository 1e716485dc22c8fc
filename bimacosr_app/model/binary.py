"""BiMaCoSR binarized layers in training (fake-quant) form.

A binarized layer computes (DESIGN.md sections 1 and 3)

    y = RPReLU(beta_o * conv(alpha * sign(x), sign(W_b)) + b) + SMB(x) + LRMB(x)

* ``sign(0) = +1`` everywhere (training and packing), so the packed model computes exactly
  what was trained.
* weights: ``beta_o * sign(W_b)`` with ``beta_o = mean |W_b|`` over (Cin, kh, kw), recomputed
  from the latent weights every call; the gradient of sign is the clipped straight-through
  estimator ``1{|W_b| <= 1}``.
* activations: ``alpha_p * sign(x)`` with ``alpha_p = mean |x|`` over channels, one scale per
  pixel (per token for linears); the gradient of sign is Bi-Real's polynomial
  ``2 - 2|x|`` for ``|x| < 1``, else 0. Zero padding of the binarized input is exactly
  "alpha = 0 at padded pixels".
* Two activation bases (optional, convs only, ``act_bases=2``; residual binarization, as in
  ABC-Net and ReBNN): ``a1 * sign(x) + a2 * sign(x - a1 * sign(x))``, each base with its own
  per-pixel scale (the mean |.| of what it binarizes); two 1-bit products of the same weights.
  The second base's gradient reaches ``x`` through its own sign alone (the first base is a
  constant of the residual). The packed format gives them to the convs at LR resolution
  (binarization ``lr_act_bases`` 2, checkpoint/format.py).
* Activation threshold (optional, ``act_shift=True``; ReActNet's RSign): a trainable
  per-input-channel threshold ``s``, so the activation is ``alpha_p * sign(x - s)`` with
  ``alpha_p = mean |x - s|``. Post-SiLU/GELU inputs are skewed (positive values large, negative
  ones small); thresholding at zero throws their mean away and doubles the layer's error.
  ``calibrate_shift`` sets ``s`` to the input's channel means and moves what the layer loses,
  ``W s``, into the bias, so the conversion stays exact in expectation.
* RPReLU (convs only): ``u = y + shift_in; PReLU(u, slope) + shift_out``, per channel.
* SMB (Sparse Matrix Branch): ``n`` fixed positions of a Cin->Cout 1x1 operator with
  trainable values, on the full-precision input.
* LRMB (Low-Rank Matrix Branch): ``up @ down`` of rank r, a 1x1 Cin->r->Cout pair on the
  full-precision input.
Both branches use the conv's stride (stride-matched, DESIGN.md 2.6): for a 3x3 conv with
padding 1 and stride s, output pixel p's centre tap reads input pixel s*p, which is what a 1x1
conv with stride s reads.
* Shortcut (optional, ``shortcut=True``; our addition, BBCU-style, ``model.shortcut``): a
  fixed, parameter-free 1x1 operator ``shortcut_matrix(Cout, Cin)`` on the full-precision
  input, so that full-precision information crosses every 1-bit layer, also those that change
  the channel count or resolution. Being a 1x1 operator it joins SMB + LRMB in
  ``branch_matrix()``: every backend runs it inside the dense branch, at no extra cost, and it
  is never stored; training adds it with ``apply_shortcut`` (a copy, mean or repeat).
* Gain (optional, ``gain=True``): a trainable per-output-channel factor on ``beta``, so the
  1-bit path's scale can match what it replaces beside the shortcut (``beta * alpha``
  overshoots the least-squares scale of a product of two sign approximations);
  ``calibrate_gain`` fits it by least squares at conversion. Export folds it into ``beta``.
* Gradual binarization (training only): ``binary_mix`` m in [0, 1] blends the 1-bit path with
  the full-precision conv of the same latent weights, ``m * RPReLU(binary) + (1 - m) * (conv(x
  - s, W_b) + b)``, branches added to both. At m = 0 a freshly converted layer computes exactly
  the FP layer it replaced, with or without a shortcut; the trainer ramps m to 1
  (``set_binary_mix``), and m = 1, the default, is the only form that is exported or packed.
* Scale gradient (training only): ``beta_o``'s own gradient to the latent weights, on by
  default; off (``set_scale_gradient``), ``mean |W_b|`` enters ``beta_o`` as a constant of
  each step (ReActNet's detached weight scale), so the loss can change the 1-bit path's scale
  only through the gain, and the latent weights move by the straight-through gradient alone
  (they do not all shrink together when the loss wants a smaller output). The function, the
  state dict and the export are the same either way.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .shortcut import ShortcutConv2d, ShortcutLinear, apply_shortcut, shortcut_matrix

__all__ = [
    "BinaryConv2d",
    "BinaryLinear",
    "RPReLU",
    "binarize_activation",
    "binarize_weight",
    "set_binary_mix",
    "set_scale_gradient",
    "sign",
]


def sign(x: torch.Tensor) -> torch.Tensor:
    """+1 where x >= 0, -1 elsewhere (sign(0) = +1)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


class _ApproxSign(torch.autograd.Function):
    """sign(x) forward; Bi-Real polynomial STE backward: d/dx = max(0, 2 - 2|x|)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.clamp(2.0 - 2.0 * x.abs(), min=0.0)


class _ClippedSign(torch.autograd.Function):
    """sign(w) forward; clipped straight-through backward: d/dw = 1{|w| <= 1}."""

    @staticmethod
    def forward(ctx, w):
        ctx.save_for_backward(w)
        return sign(w)

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1.0).to(grad.dtype)


def binarize_activation(x: torch.Tensor, channel_dim: int, bases: int = 1) -> torch.Tensor:
    """alpha_p * sign(x) with alpha_p = mean |x| over ``channel_dim`` (kept); with ``bases=2``
    plus the same of the residual ``x - alpha_p * sign(x)`` (module docstring)."""
    alpha = x.abs().mean(dim=channel_dim, keepdim=True)
    first = alpha * _ApproxSign.apply(x)
    if bases == 1:
        return first
    if bases != 2:
        raise ValueError(f"activation bases must be 1 or 2, got {bases}")
    residual = x - first.detach()
    return first + residual.abs().mean(dim=channel_dim, keepdim=True) * _ApproxSign.apply(residual)


def binarize_weight(w: torch.Tensor) -> torch.Tensor:
    """beta_o * sign(w) with beta_o = mean |w| over every dim but the first."""
    beta = w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)
    return beta * _ClippedSign.apply(w)


class RPReLU(nn.Module):
    """Per-channel shift -> PReLU -> shift (ReActNet). ``channel_dim`` of the input."""

    def __init__(self, channels: int, slope_init: float = 0.25, channel_dim: int = 1):
        super().__init__()
        self.channel_dim = channel_dim
        self.shift_in = nn.Parameter(torch.zeros(channels))
        self.slope = nn.Parameter(torch.full((channels,), float(slope_init)))
        self.shift_out = nn.Parameter(torch.zeros(channels))

    def _view(self, p: torch.Tensor, ndim: int) -> torch.Tensor:
        shape = [1] * ndim
        shape[self.channel_dim] = -1
        return p.view(shape)

    def forward(self, x):
        u = x + self._view(self.shift_in, x.dim())
        u = torch.where(u > 0, u, u * self._view(self.slope, x.dim()))
        return u + self._view(self.shift_out, x.dim())


def set_scale_gradient(model: nn.Module, on: bool) -> None:
    """Let every 1-bit layer's weight scale ``mean |W_b|`` pass gradient to the latent weights
    (``on``, the default) or enter as a constant (module docstring, "Scale gradient")."""
    for m in model.modules():
        if isinstance(m, _MatrixBranches):
            m.scale_gradient = bool(on)


def set_binary_mix(model: nn.Module, mix: float) -> None:
    """Set every 1-bit layer's ``binary_mix`` (1 = fully binary, 0 = full precision)."""
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"binary_mix must be in [0, 1], got {mix}")
    for m in model.modules():
        if isinstance(m, _MatrixBranches):
            m.binary_mix = float(mix)


class _MatrixBranches(nn.Module):
    """SMB and LRMB shared by BinaryConv2d and BinaryLinear.

    Buffers/parameters (absent when the branch is off):
      smb_index  (n,)       int64, flat positions o * Cin + i, fixed
      smb_value  (n,)       trainable values
      lrmb_down  (r, Cin)   "B" = sqrt(S_r) V_r^T
      lrmb_up    (Cout, r)  "A" = U_r sqrt(S_r)
      shortcut   (Cout, Cin) shortcut_matrix(), fixed, not in the state dict
      act_shift  (Cin,)     trainable activation threshold
      gain       (Cout,)    trainable factor on beta
    """

    in_features: int
    out_features: int
    binary_mix: float = 1.0  # gradual binarization (module docstring); 1 outside training
    scale_gradient: bool = True  # d beta / d W_b flows (module docstring, "Scale gradient")

    def _init_branches(self, shortcut: bool, act_shift: bool = False, gain: bool = False):
        self.act_shift = nn.Parameter(torch.zeros(self.in_features)) if act_shift else None
        self.gain = nn.Parameter(torch.ones(self.out_features)) if gain else None
        self.register_buffer("smb_index", None)
        self.smb_value = None
        self.lrmb_down = None
        self.lrmb_up = None
        self.register_buffer("shortcut", shortcut_matrix(self.out_features, self.in_features)
                             if shortcut else None, persistent=False)

    @property
    def has_act_shift(self) -> bool:
        return self.act_shift is not None

    @torch.no_grad()
    def calibrate_shift(self, channel_mean: torch.Tensor) -> None:
        """Set the activation threshold to the input's per-channel mean (Cin,) and add
        ``sum over taps of W_b`` times it to the bias: ``conv(x, W_b) = conv(x - s, W_b) + W_b s``
        away from the zero-padded border."""
        if not self.has_act_shift or self.bias is None:
            raise ValueError("calibrate_shift needs a layer with act_shift and a bias")
        self.act_shift.copy_(channel_mean.to(self.act_shift))
        self.bias += self.shift_through_weight()

    def shift_through_weight(self) -> torch.Tensor:
        """``W_b s`` (Cout,): the latent weight summed over its taps times the activation
        threshold, what ``conv(x - s, W_b)`` lacks against ``conv(x, W_b)`` away from the
        zero-padded border (times the gain, where there is one)."""
        w = self.weight.reshape(self.out_features, self.in_features, -1).sum(dim=2)
        return (w @ self.act_shift) * (self.gain if self.has_gain else 1.0)

    def _shifted(self, x: torch.Tensor, channel_dim: int) -> torch.Tensor:
        """x - s (x itself without act_shift)."""
        if not self.has_act_shift:
            return x
        shape = [1] * x.dim()
        shape[channel_dim] = -1
        return x - self.act_shift.view(shape)

    @property
    def has_gain(self) -> bool:
        return self.gain is not None

    def beta(self) -> torch.Tensor:
        """(Cout,) the weight scale the layer computes with: ``mean |W_b|`` over (Cin, kh, kw),
        times the gain where there is one."""
        beta = self.weight.abs().mean(dim=tuple(range(1, self.weight.dim())))
        if not self.scale_gradient:
            beta = beta.detach()
        return beta * self.gain if self.has_gain else beta

    def scaled_binary_weight(self) -> torch.Tensor:
        """``beta_o * sign(W_b)`` with ``beta()``: the 1-bit weight the layer computes with
        (clipped straight-through gradient to W_b)."""
        beta = self.beta().view(-1, *([1] * (self.weight.dim() - 1)))
        return beta * _ClippedSign.apply(self.weight)

    @torch.no_grad()
    def calibrate_gain(self, target: torch.Tensor, binary: torch.Tensor, channel_dim: int):
        """Set ``gain`` to the per-channel least-squares factor that maps ``binary`` (the 1-bit
        product without bias, at gain 1) onto ``target`` (what it replaces: the latent weight's
        full-precision product on the same thresholded input)."""
        dims = [d for d in range(target.dim()) if d != channel_dim % target.dim()]
        t, b = target.float(), binary.float()
        num = (t * b).sum(dim=dims)
        den = (b * b).sum(dim=dims).clamp_min(1e-12)
        # Clamped: a channel whose 1-bit product barely correlates with its target would get
        # a factor near 0 (or negative) and stop learning; one far above 1 amplifies noise.
        self.gain.copy_((num / den).clamp(0.05, 2.0).to(self.gain))

    @property
    def has_shortcut(self) -> bool:
        return self.shortcut is not None

    @property
    def has_smb(self) -> bool:
        return self.smb_value is not None

    @property
    def has_lrmb(self) -> bool:
        return self.lrmb_up is not None

    def smb_matrix(self) -> torch.Tensor:
        """The sparse branch as a dense (Cout, Cin) matrix (differentiable in the values)."""
        dense = self.smb_value.new_zeros(self.out_features * self.in_features)
        dense = dense.index_put((self.smb_index,), self.smb_value)
        return dense.view(self.out_features, self.in_features)

    def branch_matrix(self, shortcut: bool = True) -> torch.Tensor | None:
        """SMB + LRMB (+ the shortcut, unless ``shortcut=False``) as one dense (Cout, Cin)
        matrix, or None without any."""
        m = None
        if self.has_smb:
            m = self.smb_matrix()
        if self.has_lrmb:
            low = self.lrmb_up @ self.lrmb_down
            m = low if m is None else m + low
        if shortcut and self.has_shortcut:
            m = self.shortcut if m is None else m + self.shortcut
        return m

    @torch.no_grad()
    def decompose(
        self,
        weight: torch.Tensor,
        smb: bool,
        lrmb: bool,
        rank: int,
        svd_init: bool,
        generator: torch.Generator | None = None,
        centre: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Split ``weight`` into branches; return the binary part ``W_b = W - centre(S + L)``.

        M = mean of W over its k*k taps (Cout, Cin). SMB keeps the n = 2 * max(Cin, Cout)
        entries of M largest in magnitude (S). LRMB is the rank-r truncated SVD of M - S (L).
        Both act as 1x1 operators, so they are subtracted from the centre tap of W and
        ``conv(x, W_b) + S x + L x == conv(x, W)`` holds exactly at conversion.
        With ``svd_init=False`` LRMB starts LoRA-style (down Gaussian, up zero: L = 0).

        ``centre`` (Cout, Cin): a part of a k x k ``weight`` that sits on its centre tap alone
        (a plain parent's negated shortcut). M then counts it whole instead of a k*k-th of it
        (the tap mean of the rest, plus ``centre``), so SMB takes it out of ``W_b`` and the
        1-bit part is left without its large entries (``binarize(exact_shortcut=True)``).
        """
        cout, cin = weight.shape[:2]
        w = weight.detach().to(torch.float32)
        m = w.reshape(cout, cin, -1).mean(dim=2)  # (Cout, Cin)
        if centre is not None and w.dim() == 4:
            m = m + centre.to(m) * (1.0 - 1.0 / (w.shape[2] * w.shape[3]))
        removed = torch.zeros_like(m)
        if smb:
            n = min(2 * max(cin, cout), cout * cin)
            index = torch.topk(m.abs().flatten(), n, sorted=True).indices
            self.smb_index = index.to(torch.int64)
            self.smb_value = nn.Parameter(m.flatten()[index].clone())
            removed = self.smb_matrix().detach().clone()
        if lrmb:
            r = min(rank, cin, cout)
            if svd_init:
                u, s, vh = torch.linalg.svd((m - removed).double(), full_matrices=False)
                root = s[:r].sqrt()
                up = (u[:, :r] * root).float()
                down = (root[:, None] * vh[:r]).float()
                removed = removed + up @ down
            else:
                down = torch.randn(r, cin, generator=generator) / cin**0.5
                up = torch.zeros(cout, r)
            self.lrmb_up = nn.Parameter(up.contiguous())
            self.lrmb_down = nn.Parameter(down.contiguous())
        w_b = w.clone()
        if w.dim() == 4:
            kh, kw = w.shape[2:]
            w_b[:, :, kh // 2, kw // 2] -= removed
        else:
            w_b -= removed
        return w_b.to(weight.dtype)


def _own_weight(layer: nn.Conv2d | nn.Linear, keep_shortcut: bool) -> torch.Tensor:
    """The weight a 1-bit layer decomposes, so that the conversion is exact either way: a
    shortcut parent's weight plus its shortcut (on the centre tap) when the 1-bit layer does
    not keep the shortcut apart; a plain parent's weight minus the shortcut when it does."""
    w = layer.weight.detach()
    parent_has = isinstance(layer, (ShortcutConv2d, ShortcutLinear))
    if keep_shortcut == parent_has:
        return w
    w = w.clone()
    m = shortcut_matrix(w.shape[0], w.shape[1]).to(w) * (1 if parent_has else -1)
    if w.dim() == 4:
        w[:, :, w.shape[2] // 2, w.shape[3] // 2] += m
    else:
        w += m
    return w


class BinaryConv2d(_MatrixBranches):
    """Binarized conv (square kernel, padding k//2, stride 1 or 2) with RPReLU, SMB, LRMB."""

    act_bases: int = 1  # activation bases (module docstring)

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, bias=True,
                 rprelu_slope=0.25, shortcut=False, act_shift=False, gain=False):
        super().__init__()
        self.in_features = self.in_channels = in_channels
        self.out_features = self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.rprelu = RPReLU(out_channels, rprelu_slope)
        self._init_branches(shortcut, act_shift, gain)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, *, smb=True, lrmb=True, rank=8, svd_init=True,
                  rprelu_slope=0.25, shortcut=False, act_shift=False, gain=False,
                  exact_shortcut=False, generator=None) -> BinaryConv2d:
        """The 1-bit form of ``conv`` (a ShortcutConv2d keeps its shortcut outside the 1-bit
        part with ``shortcut=True``, or has it folded into the weight's centre tap without).
        With ``exact_shortcut`` a plain conv given a shortcut has the shortcut's negation
        fitted whole by the 1x1 branches (``decompose``'s ``centre``), not left in the 1-bit
        weight."""
        k = conv.kernel_size[0]
        if conv.kernel_size != (k, k) or conv.padding != (k // 2, k // 2) or conv.groups != 1:
            raise ValueError(f"cannot binarize {conv}: square kernel, 'same' padding, groups=1")
        layer = cls(conv.in_channels, conv.out_channels, k, conv.stride[0],
                    bias=conv.bias is not None, rprelu_slope=rprelu_slope, shortcut=shortcut,
                    act_shift=act_shift, gain=gain)
        layer.to(conv.weight.device)
        centre = None
        if exact_shortcut and shortcut and not isinstance(conv, ShortcutConv2d):
            centre = -shortcut_matrix(conv.out_channels, conv.in_channels)
        w_b = layer.decompose(_own_weight(conv, shortcut), smb, lrmb, rank, svd_init, generator,
                              centre)
        with torch.no_grad():
            layer.weight.copy_(w_b)
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        return layer

    def binary_conv(self, x: torch.Tensor) -> torch.Tensor:
        """beta * conv(alpha * sign(x - s), sign(W_b)) + b: the part the 1-bit kernels compute."""
        xb = binarize_activation(self._shifted(x, 1), 1, self.act_bases)  # (B,Cin,H,W)
        wb = self.scaled_binary_weight()  # (Cout,Cin,k,k)
        return F.conv2d(xb, wb, self.bias, self.stride, self.padding)

    def products(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(full-precision, 1-bit) product of the latent weight with ``x - s``, no bias, gain 1:
        what ``calibrate_gain`` fits the one onto the other with."""
        xs = self._shifted(x, 1)
        fp = F.conv2d(xs, self.weight, None, self.stride, self.padding)
        binary = F.conv2d(binarize_activation(xs, 1, self.act_bases), binarize_weight(self.weight),
                          None, self.stride, self.padding)
        return fp, binary

    def branches(self, x: torch.Tensor) -> torch.Tensor | None:
        """SMB(x) + LRMB(x) (one dense 1x1 conv) + shortcut(x) on the full-precision input,
        or None without any."""
        m = self.branch_matrix(shortcut=False)
        out = None if m is None else F.conv2d(x, m[:, :, None, None], stride=self.stride)
        if self.has_shortcut:
            identity = apply_shortcut(x, self.out_channels, 1, self.stride, self.shortcut)
            out = identity if out is None else out + identity
        return out

    def forward(self, x):  # (B,Cin,H,W) -> (B,Cout,H/s,W/s)
        y = self.rprelu(self.binary_conv(x))
        if self.binary_mix < 1.0:
            fp = F.conv2d(self._shifted(x, 1), self.weight, self.bias, self.stride, self.padding)
            y = fp + self.binary_mix * (y - fp)  # not lerp: autocast may give y and fp two dtypes
        extra = self.branches(x)
        return y if extra is None else y + extra

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, "
                f"stride={self.stride}, smb={self.has_smb}, lrmb={self.has_lrmb}, "
                f"shortcut={self.has_shortcut}, act_shift={self.has_act_shift}, "
                f"gain={self.has_gain}, act_bases={self.act_bases}")


class BinaryLinear(_MatrixBranches):
    """Binarized linear over the last dim (per-token alpha), with SMB and LRMB; no RPReLU."""

    def __init__(self, in_features, out_features, bias=True, shortcut=False, act_shift=False,
                 gain=False):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self._init_branches(shortcut, act_shift, gain)

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, smb=True, lrmb=True, rank=8, svd_init=True,
                    shortcut=False, act_shift=False, gain=False, generator=None) -> BinaryLinear:
        """The 1-bit form of ``linear`` (a ShortcutLinear's shortcut as in ``from_conv``)."""
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                    shortcut=shortcut, act_shift=act_shift, gain=gain)
        layer.to(linear.weight.device)
        w_b = layer.decompose(_own_weight(linear, shortcut), smb, lrmb, rank, svd_init,
                              generator)
        with torch.no_grad():
            layer.weight.copy_(w_b)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer

    def binary_linear(self, x: torch.Tensor) -> torch.Tensor:
        xb = binarize_activation(self._shifted(x, -1), channel_dim=-1)  # (..., Cin)
        return F.linear(xb, self.scaled_binary_weight(), self.bias)

    def products(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(full-precision, 1-bit) product of the latent weight with ``x - s``, no bias, gain 1."""
        xs = self._shifted(x, -1)
        return (F.linear(xs, self.weight),
                F.linear(binarize_activation(xs, channel_dim=-1), binarize_weight(self.weight)))

    def forward(self, x):  # (..., Cin) -> (..., Cout)
        y = self.binary_linear(x)
        if self.binary_mix < 1.0:
            fp = F.linear(self._shifted(x, -1), self.weight, self.bias)
            y = fp + self.binary_mix * (y - fp)
        m = self.branch_matrix(shortcut=False)
        if m is not None:
            y = y + F.linear(x, m)
        if self.has_shortcut:
            y = y + apply_shortcut(x, self.out_features, -1, matrix=self.shortcut)
        return y

    def extra_repr(self):
        return (f"{self.in_features}, {self.out_features}, smb={self.has_smb}, "
                f"lrmb={self.has_lrmb}, shortcut={self.has_shortcut}, gain={self.has_gain}, "
                f"act_shift={self.has_act_shift}")
