"""Convert a full-precision denoiser into its BiMaCoSR binarized form, in place."""

from __future__ import annotations

import torch
import torch.nn as nn

from .binary import BinaryConv2d, BinaryLinear
from .unet import FULL_PRECISION_NAMES

__all__ = ["binarizable_layers", "binarize"]


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
    shortcut: bool = False,
    seed: int = 0,
) -> nn.Module:
    """Replace every binarizable layer by BinaryConv2d/BinaryLinear (SMB, then LRMB, then
    the binary remainder), keeping the function exact at conversion up to binarization.

    The switches give the paper's ablations: ``smb=False, lrmb=False`` is BMB only;
    ``svd_init=False`` starts LRMB LoRA-style instead of from the SVD. ``shortcut`` adds the
    parameter-free full-precision shortcut to every layer (``binary.shortcut_matrix``; this
    changes the function at conversion). The options are recorded in ``model.binarization``
    (``shortcut`` only when on). Returns ``model``.
    """
    generator = torch.Generator().manual_seed(seed)
    for name in binarizable_layers(model):
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = getattr(parent, child_name)
        if isinstance(layer, nn.Conv2d):
            new = BinaryConv2d.from_conv(layer, smb=smb, lrmb=lrmb, rank=rank,
                                         svd_init=svd_init, rprelu_slope=rprelu_slope,
                                         shortcut=shortcut, generator=generator)
        else:
            new = BinaryLinear.from_linear(layer, smb=smb, lrmb=lrmb, rank=rank,
                                           svd_init=svd_init, shortcut=shortcut,
                                           generator=generator)
        setattr(parent, child_name, new)
    model.binarization = {"rank": rank, "smb": smb, "lrmb": lrmb, "svd_init": svd_init,
                          "rprelu_slope": rprelu_slope, "seed": seed}
    if shortcut:  # recorded only when on, so files without it read as shortcut-free
        model.binarization["shortcut"] = True
    return model
