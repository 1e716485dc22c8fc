"""Convert a full-precision denoiser into its BiMaCoSR binarized form, in place."""

from __future__ import annotations

import torch
import torch.nn as nn

from .binary import BinaryConv2d, BinaryLinear
from .layout import resolution_level
from .shortcut import ShortcutConv2d, ShortcutLinear
from .unet import FULL_PRECISION_NAMES

__all__ = ["binarizable_layers", "binarize", "calibrate_act_shift", "calibrate_gain"]


def binarizable_layers(model: nn.Module) -> list[str]:
    """Qualified names of the Conv2d/Linear layers that binarize() converts."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
        and not set(name.split(".")) & set(FULL_PRECISION_NAMES)
    ]


def binarize(
    model: nn.Module,
    rank: int = 8,
    smb: bool = True,
    lrmb: bool = True,
    svd_init: bool = True,
    rprelu_slope: float = 0.25,
    shortcut: bool | None = None,
    act_shift: bool = False,
    gain: bool = False,
    lr_act_bases: int = 1,
    exact_shortcut: bool = False,
    seed: int = 0,
) -> nn.Module:
    """Replace every binarizable layer by BinaryConv2d/BinaryLinear (SMB, then LRMB, then
    the binary remainder), keeping the function exact at conversion up to binarization.

    The switches give the paper's ablations: ``smb=False, lrmb=False`` is BMB only;
    ``svd_init=False`` starts LRMB LoRA-style instead of from the SVD. ``shortcut`` is the
    parameter-free full-precision shortcut of a layer (``model.shortcut``): ``None`` (default)
    keeps each layer as its parent has it (the ShortcutConv2d / ShortcutLinear of a
    ``ModelConfig.shortcuts`` parent); ``False`` gives no layer one, folding a shortcut
    parent's into the 1-bit weight (the "no shortcut" ablation; the residual units of its
    ResBlocks stay, being the architecture); ``True`` gives one to every layer the architecture
    allows: with ``shortcuts`` the same as ``None``, without every layer (its 1-bit part then
    decomposes the weight minus the shortcut, so the conversion stays exact). ``act_shift``
    gives every layer a trainable activation threshold (zero until ``calibrate_act_shift``),
    ``gain`` a trainable factor on beta (one until calibrated). ``lr_act_bases`` (1 or 2) is
    the number of activation bases of the 1-bit convolutions whose output is at LR resolution
    (level 0). ``exact_shortcut`` changes only the conversion of a plain parent's convolutions
    given a shortcut: their 1x1 branches take the shortcut's negation whole
    (``BinaryConv2d.decompose``'s ``centre``), so the converted layer is exact up to
    binarization with the shortcut cancelled until training moves those SMB values; without
    it they take a k*k-th of it and the 1-bit weight keeps the rest, which sign() cannot
    (each convolution then computes about ``W + 0.86 I``; docs/TRAINING.md, "Where
    binarization hurts"); it changes initial values only and is not recorded. The
    other options are recorded in ``model.binarization`` (``shortcut``, ``act_shift`` and
    ``gain`` only when on, ``lr_act_bases`` only when 2). Returns ``model``.
    """
    if lr_act_bases not in (1, 2):
        raise ValueError(f"lr_act_bases must be 1 or 2, got {lr_act_bases}")
    deepest = len(model.config.widths) - 1
    per_architecture = shortcut is None or (
        shortcut and getattr(getattr(model, "config", None), "shortcuts", False))
    generator = torch.Generator().manual_seed(seed)
    any_shortcut = False
    for name in binarizable_layers(model):
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = getattr(parent, child_name)
        keep = isinstance(layer, (ShortcutConv2d, ShortcutLinear)) if per_architecture \
            else bool(shortcut)
        any_shortcut |= keep
        if isinstance(layer, nn.Conv2d):
            new = BinaryConv2d.from_conv(layer, smb=smb, lrmb=lrmb, rank=rank,
                                         svd_init=svd_init, rprelu_slope=rprelu_slope,
                                         shortcut=keep, act_shift=act_shift, gain=gain,
                                         exact_shortcut=exact_shortcut, generator=generator)
            if resolution_level(name, deepest) == 0:
                new.act_bases = lr_act_bases
        else:
            new = BinaryLinear.from_linear(layer, smb=smb, lrmb=lrmb, rank=rank,
                                           svd_init=svd_init, shortcut=keep,
                                           act_shift=act_shift, gain=gain, generator=generator)
        setattr(parent, child_name, new)
    model.binarization = {"rank": rank, "smb": smb, "lrmb": lrmb, "svd_init": svd_init,
                          "rprelu_slope": rprelu_slope, "seed": seed}
    # Recorded only when on, so that files without them read as without.
    if any_shortcut:
        model.binarization["shortcut"] = True
    if act_shift:
        model.binarization["act_shift"] = True
    if gain:
        model.binarization["gain"] = True
    if lr_act_bases != 1:
        model.binarization["lr_act_bases"] = lr_act_bases
    return model


def _hook_reference_inputs(model: nn.Module, reference: nn.Module, run, use) -> None:
    """Run ``run(reference)`` once with every 1-bit layer of ``model`` hooked to the FP layer of
    the same name in ``reference``: ``use(name, layer, x)`` gets each FP layer's input."""
    layers = {name: m for name, m in model.named_modules()
              if isinstance(m, (BinaryConv2d, BinaryLinear))}
    reference_modules = dict(reference.named_modules())
    handles = [reference_modules[name].register_forward_hook(
        lambda _module, inputs, _output, name=name, layer=layer: use(name, layer, inputs[0]))
        for name, layer in layers.items()]
    try:
        run(reference)
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def calibrate_gain(model: nn.Module, reference: nn.Module, run) -> None:
    """Fit every 1-bit layer's ``gain`` by least squares on a calibration batch: each layer
    takes the input its FP layer receives in ``run(reference)`` (as ``calibrate_act_shift``)
    and maps its 1-bit product onto its latent weight's full-precision product of the same
    thresholded input (``products``). Run after ``calibrate_act_shift``."""
    def fit(_name, layer, x):
        if layer.has_gain:
            fp, binary = layer.products(x.to(layer.weight.dtype))
            layer.calibrate_gain(fp, binary, 1 if isinstance(layer, BinaryConv2d) else -1)

    _hook_reference_inputs(model, reference, run, fit)


@torch.no_grad()
def calibrate_act_shift(model: nn.Module, reference: nn.Module, run) -> None:
    """Set every 1-bit layer's activation threshold from data: ``run(reference)`` runs the
    full-precision model the binarized ``model`` came from (same layer names) on a calibration
    batch; each layer's threshold becomes the per-channel mean of what its FP layer receives
    (``BinaryConv2d.calibrate_shift``)."""
    means: dict[str, tuple[nn.Module, torch.Tensor]] = {}

    def record(name, layer, x):
        channel_dim = (1 if isinstance(layer, BinaryConv2d) else -1) % x.dim()
        means[name] = layer, x.float().mean(dim=[d for d in range(x.dim()) if d != channel_dim])

    _hook_reference_inputs(model, reference, run, record)
    for layer, mean in means.values():
        layer.calibrate_shift(mean)
