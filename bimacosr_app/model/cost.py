"""Parameter and operation counts by the paper's rule.

Binary weights count 1/32 of a parameter and binary multiply-accumulates 1/64 of an
operation; everything full precision (first/last conv, SMB and LRMB branches, beta, biases,
RPReLU, attention matmuls) counts in full. Operations are multiply-accumulates of convs,
linears and the two attention matmuls (QK^T, AV); normalization, activations and softmax
are not counted, as in the paper. SMB counts its n values (positions are fixed indices). The
optional full-precision shortcut has no parameters and counts one operation per nonzero of
its fixed operator, max(Cin, Cout) per output pixel/token. Activation thresholds
(``act_shift``, Cin per layer) are full-precision parameters; subtracting them is part of the
activation and counts no operation. A convolution with two activation bases (``act_bases``
2) does its binary multiply-accumulates twice, once per base, with the same weights.

The time path is a constant of the one-step model and is folded at export (DESIGN.md 2.4):
with ``fold_time=True`` (default) ``time_embed`` counts nothing and each ``film`` counts
its 2*Cout folded constants and no operations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from .binary import BinaryConv2d, BinaryLinear
from .unet import Denoiser, WindowAttention

__all__ = ["ModelCost", "model_cost"]


@dataclass
class ModelCost:
    params: float  # every parameter counted in full
    params_effective: float  # binary weights / 32
    macs: float  # every MAC counted in full
    ops_effective: float  # binary MACs / 64

    def to_dict(self) -> dict:
        return asdict(self)


def _branch_size(layer) -> int:
    """SMB + LRMB parameters; also their MACs per output pixel/token (both are 1x1 maps)."""
    n = 0
    if layer.has_smb:
        n += layer.smb_value.numel()
    if layer.has_lrmb:
        n += layer.lrmb_up.numel() + layer.lrmb_down.numel()
    return n


def _branch_macs(layer) -> int:
    """MACs per output pixel/token of the full-precision 1x1 branch (SMB, LRMB, shortcut)."""
    shortcut = max(layer.in_features, layer.out_features) if layer.has_shortcut else 0
    return _branch_size(layer) + shortcut


def _numel(t) -> int:
    return 0 if t is None else t.numel()


def model_cost(model: nn.Module, lr_height: int, lr_width: int, fold_time: bool = True
               ) -> ModelCost:
    """Count ``model`` for one LR input of lr_height x lr_width (batch 1)."""
    totals = {"params": 0.0, "params_effective": 0.0, "macs": 0.0, "ops_effective": 0.0}

    def add(params_full, params_eff, macs_full, ops_eff):
        totals["params"] += params_full
        totals["params_effective"] += params_eff
        totals["macs"] += macs_full
        totals["ops_effective"] += ops_eff

    def folded(name: str) -> bool:
        return fold_time and bool({"time_embed", "film"} & set(name.split(".")))

    hooks = []

    def conv_hook(module, inputs, output):
        pixels = output.shape[-2] * output.shape[-1]
        if isinstance(module, BinaryConv2d):
            w = module.weight.numel()
            fp_params = (_numel(module.bias) + 3 * module.out_channels + _branch_size(module)
                         + _numel(module.act_shift))
            branch_macs = _branch_macs(module) * pixels
            binary_macs = w * pixels * module.act_bases
            add(w + fp_params, w / 32 + fp_params, binary_macs + branch_macs,
                binary_macs / 64 + branch_macs)
        else:
            p = module.weight.numel() + _numel(module.bias)
            macs = module.weight.numel() * pixels  # Cout * Cin/groups * kh * kw per pixel
            add(p, p, macs, macs)

    def linear_hook(name):
        def hook(module, inputs, output):
            tokens = output.numel() // output.shape[-1]
            if folded(name):
                if "film" in name.split("."):
                    add(module.out_features, module.out_features, 0, 0)
                return
            if isinstance(module, BinaryLinear):
                w = module.weight.numel()
                fp_params = _numel(module.bias) + _branch_size(module) + _numel(module.act_shift)
                branch_macs = _branch_macs(module) * tokens
                add(w + fp_params, w / 32 + fp_params, w * tokens + branch_macs,
                    w * tokens / 64 + branch_macs)
            else:
                p = module.weight.numel() + _numel(module.bias)
                add(p, p, module.weight.numel() * tokens, module.weight.numel() * tokens)
        return hook

    def attention_hook(module, inputs, output):
        bw, n, c = inputs[0].shape
        macs = 2 * bw * n * n * c  # QK^T and AV over all windows and heads
        p = module.rel_bias.numel()
        add(p, p, macs, macs)

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, BinaryConv2d)):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, (nn.Linear, BinaryLinear)):
            hooks.append(module.register_forward_hook(linear_hook(name)))
        elif isinstance(module, WindowAttention):
            hooks.append(module.register_forward_hook(attention_hook))

    # Parameters outside counted layers (norms, RPReLU of plain layers): full precision.
    layer_types = (nn.Conv2d, nn.Linear, BinaryConv2d, BinaryLinear, WindowAttention)
    for name, module in model.named_modules():
        if isinstance(module, layer_types) or folded(name):
            continue
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if own and not _inside_layer(model, name, layer_types):
            add(own, own, 0, 0)

    try:
        with torch.no_grad():
            if isinstance(model, Denoiser):
                cfg = model.config
                model(torch.zeros(1, cfg.out_channels, lr_height, lr_width),
                      torch.zeros(1, cfg.in_channels - cfg.out_channels, lr_height, lr_width),
                      torch.zeros(1, dtype=torch.long))
            else:
                model(torch.zeros(1, _first_in_channels(model), lr_height, lr_width))
    finally:
        for h in hooks:
            h.remove()
    return ModelCost(**totals)


def _inside_layer(model: nn.Module, name: str, layer_types) -> bool:
    parts = name.split(".")
    for i in range(1, len(parts)):
        if isinstance(model.get_submodule(".".join(parts[:i])), layer_types):
            return True
    return False


def _first_in_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, BinaryConv2d)):
            return module.in_channels
    raise ValueError("model has no conv layer to take its input channels from")
