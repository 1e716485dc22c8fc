"""Fold the one-step model's constant time input into its normalizations (DESIGN.md 2.4).

The one-step model is only ever called at ``t = T-1``, so every ResBlock's FiLM terms
``(scale, shift) = film(silu(time_embed(t)))`` are per-channel constants. Since

    (n * gamma + beta) * (1 + scale) + shift = n * gamma' + beta'
    gamma' = gamma * (1 + scale),   beta' = beta * (1 + scale) + shift

(``n`` the normalized value, ``gamma, beta`` norm2's affine), FiLM moves into ``norm2`` and the
time path (``time_embed`` and every ``film``) is removed. The folded network computes the
same function at that t up to float32 rounding of the folded affine (computed in float64).
"""

from __future__ import annotations

import torch

from .unet import Denoiser, ResBlock

__all__ = ["fold_time"]


@torch.no_grad()
def fold_time(model: Denoiser, t: int) -> Denoiser:
    """Fold the time path of ``model`` at step ``t``, in place; returns ``model``.

    Afterwards ``model.time_embed`` and every ``ResBlock.film`` are ``None``,
    ``model.folded_t == t``, and calling the model with any other t raises ValueError.
    """
    if model.folded_t is not None:
        raise ValueError(f"the time path is already folded (at t={model.folded_t})")
    device = model.conv_in.weight.device
    temb = model.time_embedding(torch.tensor([int(t)], device=device))  # (1, time_dim)
    for block in model.modules():
        if isinstance(block, ResBlock):
            scale, shift = (v.flatten().double() for v in block.film_terms(temb))  # (Cout,)
            norm = block.norm2
            gamma, beta = norm.weight.double(), norm.bias.double()
            norm.weight.copy_(gamma * (1 + scale))
            norm.bias.copy_(beta * (1 + scale) + shift)
            block.film = None
    model.time_embed = None
    model.folded_t = int(t)
    return model
