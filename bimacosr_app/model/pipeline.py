"""One-step super-resolution with the denoiser: LR image -> HR image (DESIGN.md 1, 2.1, 2.3).

    z_y = PU(bicubic_x4(LR));  x_T = z_y + kappa sqrt(eta_T) eps;
    x0_hat = f(x_T / sqrt(kappa^2 eta_T + 1), LR, T-1);  HR = PS(x0_hat)

Images at this interface are (B,3,h,w) in [0, 1]; the model works in [-1, 1].
"""

from __future__ import annotations

import torch

from .diffusion import ResShiftSchedule
from .latent import LATENT_CHANNELS, bicubic_upscale, from_latent, to_latent
from .noise import position_noise

__all__ = ["one_step_latent", "upscale_tile"]


def one_step_latent(denoise, schedule: ResShiftSchedule, lr: torch.Tensor,
                    noise: torch.Tensor | None) -> torch.Tensor:
    """lr (B,3,h,w) in [-1,1], noise (B,48,h,w) -> predicted x0 latent (B,48,h,w). ``noise``
    may be None where the schedule has kappa = 0 (no noise: x_T = z_y).

    ``denoise(x_t_scaled, lr, t, z_y)`` is a Denoiser or anything with its call signature.
    """
    t = schedule.steps - 1
    y = to_latent(bicubic_upscale(lr))
    x_t = y if noise is None else schedule.prior_sample(y, noise)
    return denoise(x_t * schedule.input_scale(t), lr, t, y)


def upscale_tile(denoise, schedule: ResShiftSchedule, lr01: torch.Tensor, seed: int = 0,
                 top: int = 0, left: int = 0) -> torch.Tensor:
    """lr01 (1,3,h,w) in [0,1] at absolute LR position (top, left) -> (1,3,4h,4w) in [0,1].

    The noise depends only on (seed, absolute position), so tiles agree with the whole image;
    a schedule with kappa = 0 draws none.
    """
    _, _, h, w = lr01.shape
    noise = None if schedule.kappa == 0 else \
        position_noise(seed, top, left, h, w, LATENT_CHANNELS, lr01.device).to(lr01.dtype)
    lr = lr01 * 2 - 1
    x0 = one_step_latent(denoise, schedule, lr, noise)
    return ((from_latent(x0) + 1) * 0.5).clamp(0, 1)
