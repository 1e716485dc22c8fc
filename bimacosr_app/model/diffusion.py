"""ResShift diffusion schedule (Yue et al., 2023) as used by BiMaCoSR.

The forward process shifts the residual ``e0 = y - x0`` into the state while adding noise:

    x_t = x0 + eta_t * (y - x0) + kappa * sqrt(eta_t) * eps,       t = 0 .. T-1 (0-based)

with ``sqrt(eta_t)`` following the exponential schedule of power ``p`` between
``sqrt(eta_0) = 0.02`` and ``sqrt(eta_{T-1}) = 0.99``:

    sqrt(eta_t) = s0 * (s_end / s0) ** ((t / (T-1)) ** p)

The network sees ``x_t / sqrt(kappa^2 eta_t + 1)`` and predicts ``x0``. The deterministic
(DDIM-like) step used by the teacher and by distillation is

    x_{t-1} = k_t * x0_hat + m_t * x_t + j_t * y
    m_t = sqrt(eta_{t-1} / eta_t)
    j_t = eta_{t-1} - sqrt(eta_{t-1} * eta_t)
    k_t = 1 - eta_{t-1} + sqrt(eta_{t-1} * eta_t) - sqrt(eta_{t-1} / eta_t)

(k + m + j = 1; with eta_{-1} = 0 the last step returns ``x0_hat``.)
"""

from __future__ import annotations

import math

import torch

from .config import DiffusionConfig

__all__ = ["DiffusionConfig", "ResShiftSchedule"]


class ResShiftSchedule:
    """The schedule's constants in float64 and the operations that use them."""

    def __init__(self, config: DiffusionConfig = DiffusionConfig()):  # noqa: B008 (frozen)
        self.config = config
        T, p = config.steps, config.power
        if T < 2:
            raise ValueError("a ResShift schedule needs at least 2 steps")
        s0, s1 = config.sqrt_eta_start, config.sqrt_eta_end
        t = torch.arange(T, dtype=torch.float64)
        self.sqrt_eta = s0 * (s1 / s0) ** ((t / (T - 1)) ** p)  # (T,)
        self.eta = self.sqrt_eta**2  # (T,)
        self.kappa = config.kappa

    @property
    def steps(self) -> int:
        return self.config.steps

    def _at(self, values: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """values[t] broadcast to (B,1,1,1) in the dtype and device of ``like``."""
        t = torch.as_tensor(t, device=values.device).long().reshape(-1)
        return values[t].to(like.device, like.dtype).reshape(-1, 1, 1, 1)

    def q_sample(self, x0: torch.Tensor, y: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
        """Forward process: x_t = x0 + eta_t (y - x0) + kappa sqrt(eta_t) eps."""
        eta = self._at(self.eta, t, x0)
        sqrt_eta = self._at(self.sqrt_eta, t, x0)
        return x0 + eta * (y - x0) + self.kappa * sqrt_eta * noise

    def prior_sample(self, y: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_{T-1} = y + kappa sqrt(eta_{T-1}) eps: the one-step model's input state."""
        return y + self.kappa * float(self.sqrt_eta[-1]) * noise

    def input_scale(self, t: int) -> float:
        """Factor the network input is multiplied by: 1 / sqrt(kappa^2 eta_t + 1)."""
        return 1.0 / math.sqrt(self.kappa**2 * float(self.eta[t]) + 1.0)

    def scale_input(self, x_t: torch.Tensor, t) -> torch.Tensor:
        eta = self._at(self.eta, t, x_t)
        return x_t / torch.sqrt(self.kappa**2 * eta + 1.0)

    def step_coefficients(self, t: int) -> tuple[float, float, float]:
        """(k, m, j) of the deterministic step t -> t-1; (1, 0, 0) at t = 0."""
        if t == 0:
            return 1.0, 0.0, 0.0
        eta_t, eta_prev = float(self.eta[t]), float(self.eta[t - 1])
        m = math.sqrt(eta_prev / eta_t)
        j = eta_prev - math.sqrt(eta_prev * eta_t)
        k = 1.0 - eta_prev + math.sqrt(eta_prev * eta_t) - m
        return k, m, j

    def ddim_step(self, x0_hat: torch.Tensor, x_t: torch.Tensor, y: torch.Tensor, t: int):
        k, m, j = self.step_coefficients(t)
        return k * x0_hat + m * x_t + j * y

    def sample(self, denoise, y: torch.Tensor, noise: torch.Tensor, steps: int | None = None):
        """Deterministic sampling from t = T-1 down to 0.

        ``denoise(x_t_scaled, t) -> x0_hat`` is the network; ``steps`` limits the run to the
        first steps (``steps=1`` is the one-step model). Returns x0_hat of the last step run.
        """
        T = self.steps
        x_t = self.prior_sample(y, noise)
        t_last = 0 if steps is None else T - steps
        x0_hat = x_t
        for t in range(T - 1, t_last - 1, -1):
            x0_hat = denoise(self.scale_input(x_t, t), t)
            if t > t_last:
                x_t = self.ddim_step(x0_hat, x_t, y, t)
        return x0_hat
