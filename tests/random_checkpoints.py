"""Random 1-bit models in packed form, built one way for every test that needs a layout the
shipped checkpoint does not have (the parity suites of the CPU and CUDA backends)."""

from __future__ import annotations

import torch

from bimacosr_app.checkpoint import export_packed, load_packed
from bimacosr_app.model import (
    BinaryConv2d,
    BinaryLinear,
    Denoiser,
    DiffusionConfig,
    ModelConfig,
    binarize,
)


def random_checkpoint(path, seed: int, config: ModelConfig, kappa: float, **options):
    """A random 1-bit model, ``binarize(Denoiser(config), **options)`` with its thresholds
    and gains (where it has them) of calibrated size, written by the training-side export
    with the schedule's ``kappa`` and read back."""
    torch.manual_seed(seed)
    model = binarize(Denoiser(config), **options)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (BinaryConv2d, BinaryLinear)):
                if m.has_gain:
                    m.gain.uniform_(0.5, 1.5)
                if m.act_shift is not None:
                    m.act_shift.normal_(0.0, 0.3)
    export_packed(model, DiffusionConfig(steps=4, kappa=kappa), path, {"test": str(options)})
    return load_packed(path)
