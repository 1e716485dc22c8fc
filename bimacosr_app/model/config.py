"""The network's and the diffusion schedule's settings, without torch.

``ModelConfig`` (the Denoiser's architecture, ``model/unet.py``) and ``DiffusionConfig`` (the
ResShift schedule, ``model/diffusion.py``) are plain dataclasses: the packed checkpoint stores
them as JSON, and the CPU runtime (``bimacosr_app.runtime``), which never imports torch, reads
them from there. ``unet`` and ``diffusion`` re-export them, so training code imports them
where it always has.

The latent is a PixelUnshuffle(``SCALE``) of the image: ``LATENT_CHANNELS`` = 3 * SCALE^2
channels at LR resolution (DESIGN.md 2.1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

__all__ = ["LATENT_CHANNELS", "SCALE", "DiffusionConfig", "ModelConfig"]

SCALE = 4
LATENT_CHANNELS = 3 * SCALE * SCALE  # 48


@dataclass
class ModelConfig:
    widths: tuple[int, ...] = (64, 128, 128, 160)
    res_blocks: int = 2
    attn_levels: tuple[int, ...] = (2, 3)
    window: int = 8
    head_dim: int = 32
    mlp_ratio: float = 2.0
    time_dim: int = 128
    in_channels: int = LATENT_CHANNELS + 3
    out_channels: int = LATENT_CHANNELS
    residual: bool = True  # predict x0 as z_y + f(...): a global residual over bicubic
    shortcuts: bool = False  # a fixed shortcut around every binarizable layer (model.shortcut)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for level in self.attn_levels:
            if not 0 <= level < len(self.widths):
                raise ValueError(f"attention level {level} is not a level of widths "
                                 f"{tuple(self.widths)}")
            width = self.widths[level]
            if width % self.heads(width):
                raise ValueError(f"width {width} (level {level}) does not split into "
                                 f"{self.heads(width)} heads of head_dim {self.head_dim}")

    def heads(self, width: int) -> int:
        """Attention heads of a level of ``width`` channels (each head ``width // heads``)."""
        return max(1, width // self.head_dim)

    def to_dict(self) -> dict:
        """The fields as JSON-ready values; ``shortcuts`` only when on, so that files written
        before it existed keep their bytes."""
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["attn_levels"] = list(self.attn_levels)
        if not self.shortcuts:
            del d["shortcuts"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        d["attn_levels"] = tuple(d["attn_levels"])
        return cls(**d)

    @property
    def required_multiple(self) -> int:
        """LR size multiple the padded input must have (downsampling and windows)."""
        m = 2 ** (len(self.widths) - 1)
        for level in self.attn_levels:
            m = max(m, 2**level * self.window)
        return m


@dataclass(frozen=True)
class DiffusionConfig:
    steps: int = 15  # T
    power: float = 0.3  # p
    kappa: float = 2.0
    sqrt_eta_start: float = 0.02
    sqrt_eta_end: float = 0.99

    def to_dict(self) -> dict:
        return asdict(self)

    def last_sqrt_eta(self) -> float:
        """sqrt(eta_{T-1}), in float64 exactly as ``ResShiftSchedule`` computes it (the
        exponent (t / (T-1))^p is 1 at t = T-1)."""
        s0, s1 = self.sqrt_eta_start, self.sqrt_eta_end
        return s0 * (s1 / s0) ** 1.0

    def prior_noise_scale(self) -> float:
        """kappa * sqrt(eta_{T-1}): the one-step input is ``x_T = z_y + this * eps``."""
        return self.kappa * self.last_sqrt_eta()

    def one_step_input_scale(self) -> float:
        """1 / sqrt(kappa^2 eta_{T-1} + 1): what the network input x_T is multiplied by."""
        s = self.last_sqrt_eta()
        return 1.0 / math.sqrt(self.kappa**2 * (s * s) + 1.0)
