"""Real-ESRGAN second-order degradation pipeline and the plain bicubic track, in batched torch.

Everything runs on the device of the input batch (the GPU on the training machine). Random
parameters (kernel shapes, resize factors, noise levels, JPEG qualities, track choices) are drawn
from an explicit **CPU** ``torch.Generator``; per-pixel noise is drawn on the input's device from
a generator seeded by that CPU generator. A given seed therefore reproduces the same output on
the same device, and no draw forces a GPU synchronisation (checked on an H100: a batch of 64
256² crops is queued without waiting for the GPU; it costs about 20 ms of host time in kernel
launches, so keep the training loop free of per-step syncs to overlap it).

The pipeline follows Real-ESRGAN (Wang et al., 2021, ``realesrgan_model.py`` and
``realesrgan_dataset.py`` of the public code) with its training defaults:

1. first stage: blur (isotropic/anisotropic Gaussian, generalized Gaussian, plateau, or 2D sinc),
   random resize (up/down/keep, area/bilinear/bicubic), Gaussian or Poisson noise (grey with
   probability 0.4), JPEG;
2. second stage, applied per sample with probability ``second_stage_prob`` (0.5, per the design;
   Real-ESRGAN always applies it): the same operations with milder ranges;
3. final stage: resize to the LR size plus a sinc filter (probability 0.8), and JPEG (quality
   from the second stage's range), in random order;
4. clamp to [0, 1] and round to 8-bit levels.

Deviations from the reference code, all deliberate: kernel type, blur, noise type and grey noise
are drawn per sample (Real-ESRGAN draws the noise type per batch); Poisson noise uses a fixed 256
intensity levels instead of counting the unique values of every image (which needs a GPU sync);
JPEG is a faithful baseline codec (IJG tables clipped to [1, 255], integer quality, 4:2:0 with
libjpeg's "fancy" chroma upsampling, 8-bit output) instead of DiffJPEG's unclipped tables.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "KERNEL_TYPES",
    "RealESRGANConfig",
    "StageConfig",
    "bicubic_downscale",
    "bivariate_kernels",
    "circular_lowpass_kernels",
    "filter2d",
    "jpeg_compress",
    "jpeg_quant_tables",
    "quantize_8bit",
    "random_blur_kernels",
    "random_final_sinc_kernels",
    "realesrgan_degrade",
    "to_device_async",
]

#: Blur kernel families, in the order of ``StageConfig.kernel_probs``.
KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)

RESIZE_MODES = ("area", "bilinear", "bicubic")

#: Every kernel is padded to this size so a batch of kernels stacks into one tensor.
KERNEL_PAD = 21

# Standard IJG (JPEG Annex K) quantisation tables at quality 50, row-major.
_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8 for _ in range(4)),
)


@dataclass(frozen=True)
class StageConfig:
    """Parameters of one degradation stage (blur, resize, noise, JPEG)."""

    blur_prob: float = 1.0
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # per KERNEL_TYPES
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)  # generalized Gaussian shape
    betap_range: tuple[float, float] = (1.0, 2.0)  # plateau shape
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5  # otherwise Poisson noise
    noise_range: tuple[float, float] = (1.0, 30.0)  # Gaussian sigma, in 8-bit levels
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)  # inclusive


def _second_stage_defaults() -> StageConfig:
    return StageConfig(
        blur_prob=0.8,
        blur_sigma=(0.2, 1.5),
        resize_prob=(0.3, 0.4, 0.3),
        resize_range=(0.3, 1.2),
        noise_range=(1.0, 25.0),
        poisson_scale_range=(0.05, 2.5),
    )


@dataclass(frozen=True)
class RealESRGANConfig:
    """Real-ESRGAN degradation settings (defaults: ``train_realesrgan_x4plus.yml``).

    The first stage resizes relative to the HR size, the second relative to the LR size.
    """

    scale: int = 4
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    first: StageConfig = field(default_factory=StageConfig)
    second: StageConfig = field(default_factory=_second_stage_defaults)
    second_stage_prob: float = 0.5
    final_sinc_prob: float = 0.8


# ----------------------------------------------------------------------------- random helpers


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator) -> Tensor:
    """(n,) float32 uniform in [lo, hi), on the CPU."""
    return torch.rand(n, generator=generator) * (hi - lo) + lo


def _bernoulli(n: int, p: float, generator: torch.Generator) -> Tensor:
    """(n,) bool, True with probability p, on the CPU."""
    return torch.rand(n, generator=generator) < p


def _choice(options: Sequence, generator: torch.Generator):
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def _device_generator(device: torch.device, generator: torch.Generator) -> torch.Generator:
    """A generator on ``device`` seeded from the CPU ``generator`` (for per-pixel noise)."""
    seed = int(torch.randint(2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def to_device_async(t: Tensor, device: torch.device) -> Tensor:
    """Queue the copy of a small CPU tensor (a few KiB: per-sample parameters, indices) to
    ``device`` without waiting for the GPU.

    A blocking copy waits for all queued GPU work. A non-blocking copy of a small pageable
    buffer is queued at once; large ones and ``pin_memory`` (whose allocations synchronise
    the device) are avoided, which is why kernels and tables are built on the device from
    parameters rather than copied.
    """
    return t.to(device, non_blocking=True)


def _check_cpu_generator(generator: torch.Generator) -> None:
    if generator.device.type != "cpu":
        raise ValueError("pass a CPU torch.Generator; per-pixel noise is drawn on the data device")


# ------------------------------------------------------------------------------------ kernels


@functools.lru_cache
def _kernel_grid(pad_to: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Integer offsets from the kernel centre: x (columns) and y (rows), each (pad_to, pad_to)."""
    ax = torch.arange(pad_to, dtype=torch.float32, device=device) - (pad_to - 1) / 2
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return xx, yy


def _size_mask(kernel_size: Tensor, pad_to: int) -> Tensor:
    """(N, pad_to, pad_to) bool: True inside each centred kernel_size x kernel_size window."""
    xx, yy = _kernel_grid(pad_to, kernel_size.device)
    half = ((kernel_size - 1) // 2).view(-1, 1, 1)
    return (xx.abs() <= half) & (yy.abs() <= half)


def bivariate_kernels(
    sigma_x: Tensor,
    sigma_y: Tensor,
    theta: Tensor,
    beta: Tensor,
    plateau: Tensor,
    kernel_size: Tensor,
    pad_to: int = KERNEL_PAD,
) -> Tensor:
    """Batched (generalized) Gaussian and plateau blur kernels, normalised to sum 1.

    With ``Q = dᵀ Σ⁻¹ d`` for the offset d and ``Σ = R(θ) diag(σx², σy²) R(θ)ᵀ``: the
    generalized Gaussian is ``exp(-Q^β / 2)`` (β = 1: Gaussian) and the plateau kernel is
    ``1 / (1 + Q^β)``. All arguments are (N,) tensors; ``plateau`` is bool, ``kernel_size``
    odd integers ≤ ``pad_to``. Returns (N, pad_to, pad_to), zero outside each kernel's size.
    """
    xx, yy = _kernel_grid(pad_to, sigma_x.device)
    cos, sin = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    u = cos * xx + sin * yy  # (N,k,k) offset along the first principal axis
    v = -sin * xx + cos * yy
    q = (u / sigma_x.view(-1, 1, 1)) ** 2 + (v / sigma_y.view(-1, 1, 1)) ** 2
    qb = q.pow(beta.view(-1, 1, 1))
    k = torch.where(plateau.view(-1, 1, 1), 1.0 / (qb + 1.0), torch.exp(-0.5 * qb))
    k = k * _size_mask(kernel_size, pad_to)
    return k / k.sum(dim=(1, 2), keepdim=True)


def circular_lowpass_kernels(
    omega: Tensor, kernel_size: Tensor, pad_to: int = KERNEL_PAD
) -> Tensor:
    """Batched 2D sinc (ideal circular low-pass, cutoff ``omega`` rad/pixel) kernels.

    ``k(r) = ω·J1(ω r) / (2π r)``, ``k(0) = ω² / 4π``, cut to ``kernel_size`` and normalised
    to sum 1. ``omega`` and ``kernel_size`` are (N,); returns (N, pad_to, pad_to).
    """
    xx, yy = _kernel_grid(pad_to, omega.device)
    r = torch.sqrt(xx**2 + yy**2)  # (k,k)
    w = omega.view(-1, 1, 1)
    safe_r = torch.where(r > 0, r, torch.ones_like(r))
    k = torch.where(
        r > 0,
        w * torch.special.bessel_j1(w * safe_r) / (2 * math.pi * safe_r),
        w**2 / (4 * math.pi),
    )
    k = k * _size_mask(kernel_size, pad_to)
    return k / k.sum(dim=(1, 2), keepdim=True)


def _pulse(device: torch.device, pad_to: int = KERNEL_PAD) -> Tensor:
    """(pad_to, pad_to) identity kernel."""
    xx, yy = _kernel_grid(pad_to, device)
    return ((xx == 0) & (yy == 0)).float()


def _random_kernel_sizes(n: int, sizes: Sequence[int], generator: torch.Generator) -> Tensor:
    return torch.tensor(sizes)[torch.randint(len(sizes), (n,), generator=generator)]


def _random_beta(n: int, beta_range: tuple[float, float], generator: torch.Generator) -> Tensor:
    """Shape exponent as in Real-ESRGAN: below or above 1 with probability 1/2 each."""
    below = _uniform(n, beta_range[0], 1.0, generator)
    above = _uniform(n, 1.0, beta_range[1], generator)
    return torch.where(_bernoulli(n, 0.5, generator), below, above)


def random_blur_kernels(
    n: int,
    stage: StageConfig,
    kernel_sizes: Sequence[int],
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> Tensor:
    """n random blur kernels of one stage, (n, 21, 21) on ``device``, each summing to 1.

    Per sample: a size from ``kernel_sizes``; with ``sinc_prob`` a sinc kernel (cutoff in
    [π/3, π] below size 13, [π/5, π] otherwise), else a kernel family drawn with
    ``kernel_probs``; with probability ``1 - blur_prob`` the identity (no blur). Parameters
    are drawn on the CPU, the kernels built on ``device``.
    """
    size = _random_kernel_sizes(n, kernel_sizes, generator)
    kind = torch.multinomial(
        torch.tensor(stage.kernel_probs, dtype=torch.float32),
        n,
        replacement=True,
        generator=generator,
    )
    aniso = kind % 2 == 1
    sigma_x = _uniform(n, *stage.blur_sigma, generator)
    sigma_y = torch.where(aniso, _uniform(n, *stage.blur_sigma, generator), sigma_x)
    theta = torch.where(aniso, _uniform(n, -math.pi, math.pi, generator), torch.zeros(n))
    family = kind // 2  # 0 Gaussian, 1 generalized Gaussian, 2 plateau
    beta = torch.where(
        family == 1,
        _random_beta(n, stage.betag_range, generator),
        torch.where(family == 2, _random_beta(n, stage.betap_range, generator), torch.ones(n)),
    )
    omega_lo = torch.where(size < 13, math.pi / 3, math.pi / 5)
    omega = omega_lo + torch.rand(n, generator=generator) * (math.pi - omega_lo)
    sinc = _bernoulli(n, stage.sinc_prob, generator)
    blur = _bernoulli(n, stage.blur_prob, generator)

    params = torch.stack(
        (
            size.float(),
            (family == 2).float(),
            sigma_x,
            sigma_y,
            theta,
            beta,
            omega,
            sinc.float(),
            blur.float(),
        )
    )  # (9,n), one small host-to-device copy
    size, plateau, sigma_x, sigma_y, theta, beta, omega, sinc, blur = to_device_async(
        params, torch.device(device)
    ).unbind(0)
    kernels = bivariate_kernels(sigma_x, sigma_y, theta, beta, plateau > 0, size.long())
    kernels = torch.where(
        (sinc > 0).view(-1, 1, 1), circular_lowpass_kernels(omega, size.long()), kernels
    )
    return torch.where((blur > 0).view(-1, 1, 1), kernels, _pulse(kernels.device))


def random_final_sinc_kernels(
    n: int, cfg: RealESRGANConfig, generator: torch.Generator, device: torch.device | str = "cpu"
) -> Tensor:
    """n final-stage kernels, (n, 21, 21) on ``device``: with ``final_sinc_prob`` a sinc kernel
    with cutoff in [π/3, π], else the identity."""
    size = _random_kernel_sizes(n, cfg.kernel_sizes, generator)
    omega = _uniform(n, math.pi / 3, math.pi, generator)
    sinc = _bernoulli(n, cfg.final_sinc_prob, generator)
    params = torch.stack((size.float(), omega, sinc.float()))  # (3,n)
    size, omega, sinc = to_device_async(params, torch.device(device)).unbind(0)
    kernels = circular_lowpass_kernels(omega, size.long())
    return torch.where((sinc > 0).view(-1, 1, 1), kernels, _pulse(kernels.device))


def filter2d(x: Tensor, kernels: Tensor) -> Tensor:
    """Filter each image with its own kernel: x (B,C,H,W), kernels (B,k,k) -> (B,C,H,W).

    Reflect padding (replicate where the image is too small to reflect). All kernels here are
    point-symmetric, so correlation equals convolution.
    """
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    p = k // 2
    x = F.pad(x, (p, p, p, p), mode="reflect" if min(h, w) > p else "replicate")
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0).unsqueeze(1)  # (B*C,1,k,k)
    y = F.conv2d(x.reshape(1, b * c, h + 2 * p, w + 2 * p), weight, groups=b * c)
    return y.view(b, c, h, w)


# --------------------------------------------------------------------------------------- JPEG


def jpeg_quant_tables(quality: Tensor) -> Tensor:
    """IJG quantisation tables for integer qualities (B,) -> (B, 2, 8, 8) float (luma, chroma).

    ``scale = 5000 // q`` below 50, else ``200 - 2q``; ``table = (base·scale + 50) // 100``
    clipped to [1, 255] (libjpeg's ``jpeg_set_quality`` with baseline tables).
    """
    q = quality.to(torch.int64).clamp(1, 100).view(-1, 1, 1, 1)
    scale = torch.where(q < 50, 5000 // q, 200 - 2 * q)
    base = _base_tables(q.device)  # (2,8,8)
    return ((base * scale + 50) // 100).clamp(1, 255).to(torch.float32)


@functools.lru_cache
def _base_tables(device: torch.device) -> Tensor:
    return torch.tensor((_LUMA_TABLE, _CHROMA_TABLE), dtype=torch.int64, device=device)


@functools.lru_cache
def _dct_matrix(device: torch.device) -> Tensor:
    """Orthonormal 8-point DCT-II matrix D (8,8): coefficients = D @ block @ Dᵀ."""
    n = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * 0.5
    d[0] /= math.sqrt(2)
    return d.to(device, torch.float32)


def _jpeg_plane(x: Tensor, tables: Tensor, dct: Tensor) -> Tensor:
    """Quantise planes x (B,C,H,W) (level-shifted, H and W multiples of 8) with tables (B,8,8)."""
    b, c, h, w = x.shape
    blocks = x.view(b, c, h // 8, 8, w // 8, 8).transpose(3, 4)  # (B,C,H/8,W/8,8,8)
    t = tables.view(b, 1, 1, 1, 8, 8)
    coeffs = dct @ blocks @ dct.T
    coeffs = torch.round(coeffs / t) * t
    blocks = dct.T @ coeffs @ dct
    return blocks.transpose(3, 4).reshape(b, c, h, w)


def jpeg_compress(x: Tensor, quality: Tensor | int) -> Tensor:
    """Baseline JPEG round trip (4:2:0) of RGB x (B,3,H,W) in [0,1]; output 8-bit levels.

    ``quality`` is an int or a (B,) tensor of integer qualities 1..100. Encoder: 8-bit RGB →
    YCbCr (JFIF), edge-replicated to 16-pixel multiples, 2×2 chroma averaging, 8×8 DCT,
    IJG-table quantisation; decoder: dequantise, inverse DCT, "fancy" (triangle) chroma
    upsampling, YCbCr → RGB, 8-bit rounding. Batched and on the input's device.
    """
    b, _, h, w = x.shape
    if isinstance(quality, int):
        quality = torch.full((b,), quality, device=x.device)
    tables = jpeg_quant_tables(to_device_async(quality, x.device))  # (B,2,8,8)
    dct = _dct_matrix(x.device)

    rgb = torch.round(x.clamp(0, 1) * 255)
    ph, pw = -h % 16, -w % 16
    rgb = F.pad(rgb, (0, pw, 0, ph), mode="replicate")  # (B,3,H16,W16)
    r, g, bl = rgb.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * bl
    cb = -0.168736 * r - 0.331264 * g + 0.5 * bl + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * bl + 128
    y = torch.round(y).unsqueeze(1)  # (B,1,H16,W16)
    chroma = torch.round(F.avg_pool2d(torch.round(torch.stack((cb, cr), 1)), 2))  # (B,2,H8,W8)

    y = _jpeg_plane(y - 128, tables[:, 0], dct) + 128
    chroma = _jpeg_plane(chroma - 128, tables[:, 1], dct) + 128
    y = torch.round(y).clamp(0, 255)
    chroma = torch.round(chroma).clamp(0, 255)
    chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
    cb, cr = (chroma - 128).unbind(1)
    y = y[:, 0]
    out = torch.stack(
        (y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb), 1
    )  # (B,3,H16,W16)
    return (torch.round(out).clamp(0, 255) / 255)[:, :, :h, :w]


# ------------------------------------------------------------------------------------- stages


def quantize_8bit(x: Tensor) -> Tensor:
    """Clamp to [0,1] and round to 8-bit levels: ``round(x·255) / 255``."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def bicubic_downscale(hr: Tensor, scale: int = 4) -> Tensor:
    """The plain track: antialiased bicubic ÷scale of hr (B,3,H,W) -> (B,3,H/scale,W/scale),
    clamped and rounded to 8-bit levels."""
    h, w = hr.shape[-2:]
    lr = F.interpolate(
        hr, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False
    )
    return quantize_8bit(lr)


def _resize(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode=mode, align_corners=None if mode == "area" else False)


def _add_noise(
    x: Tensor, stage: StageConfig, generator: torch.Generator, noise_gen: torch.Generator
) -> Tensor:
    """Per sample: Gaussian (σ in ``noise_range``/255) or Poisson (scale in
    ``poisson_scale_range``) noise, grey with ``gray_noise_prob``; result clamped to [0,1]."""
    b = x.shape[0]
    gaussian = _bernoulli(b, stage.gaussian_noise_prob, generator)
    gray = _bernoulli(b, stage.gray_noise_prob, generator)
    sigma = _uniform(b, *stage.noise_range, generator) / 255
    poisson_scale = _uniform(b, *stage.poisson_scale_range, generator)
    params = torch.stack((gaussian.float(), gray.float(), sigma, poisson_scale))  # (4,B)
    params = to_device_async(params, x.device).view(4, b, 1, 1, 1)
    is_gaussian, is_gray, sigma_d, scale_d = params[0] > 0, params[1] > 0, params[2], params[3]

    # Channel 0 of an i.i.d. normal draw, broadcast, is a valid grey draw.
    normal = torch.randn(x.shape, generator=noise_gen, device=x.device, dtype=x.dtype)
    noise = torch.where(is_gray, normal[:, :1].expand_as(normal), normal) * sigma_d  # (B,3,H,W)

    if not bool(gaussian.all()):
        levels = 256.0  # Real-ESRGAN: 2^ceil(log2(#unique values)), 256 for photos
        img = quantize_8bit(x)
        shot = torch.poisson(img * levels, generator=noise_gen) / levels - img  # (B,3,H,W)
        if bool(gray.any()):
            r, g, bl = img.split(1, dim=1)
            lum = quantize_8bit(0.299 * r + 0.587 * g + 0.114 * bl)  # (B,1,H,W)
            shot_gray = torch.poisson(lum * levels, generator=noise_gen) / levels - lum
            shot = torch.where(is_gray, shot_gray.expand_as(shot), shot)
        noise = torch.where(is_gaussian, noise, shot * scale_d)
    return (x + noise).clamp(0, 1)


def _degradation_stage(
    x: Tensor,
    stage: StageConfig,
    ref_size: tuple[int, int],
    cfg: RealESRGANConfig,
    generator: torch.Generator,
    noise_gen: torch.Generator,
) -> Tensor:
    """Blur, resize (factor relative to ``ref_size``, one factor and mode per batch), noise,
    JPEG. x (B,3,H,W) -> (B,3,H',W')."""
    b = x.shape[0]
    x = filter2d(x, random_blur_kernels(b, stage, cfg.kernel_sizes, generator, x.device))

    updown = int(
        torch.multinomial(
            torch.tensor(stage.resize_prob, dtype=torch.float32), 1, generator=generator
        )
    )
    lo, hi = stage.resize_range
    up, down = float(_uniform(1, 1.0, hi, generator)), float(_uniform(1, lo, 1.0, generator))
    factor = (up, down, 1.0)[updown]
    size = (max(1, int(ref_size[0] * factor)), max(1, int(ref_size[1] * factor)))
    x = _resize(x, size, _choice(RESIZE_MODES, generator))

    x = _add_noise(x, stage, generator, noise_gen)
    quality = torch.randint(stage.jpeg_range[0], stage.jpeg_range[1] + 1, (b,), generator=generator)
    return jpeg_compress(x, quality)


def _final_stage(
    x: Tensor,
    lr_size: tuple[int, int],
    cfg: RealESRGANConfig,
    generator: torch.Generator,
) -> Tensor:
    """Resize to ``lr_size`` + sinc filter, and JPEG, in random order (one order per batch)."""
    b = x.shape[0]
    kernels = random_final_sinc_kernels(b, cfg, generator, x.device)
    lo, hi = cfg.second.jpeg_range
    quality = torch.randint(lo, hi + 1, (b,), generator=generator)
    mode = _choice(RESIZE_MODES, generator)
    if bool(_bernoulli(1, 0.5, generator)):
        x = filter2d(_resize(x, lr_size, mode), kernels)
        return jpeg_compress(x, quality)
    x = jpeg_compress(x, quality)
    return filter2d(_resize(x, lr_size, mode), kernels)


def realesrgan_degrade(hr: Tensor, cfg: RealESRGANConfig, generator: torch.Generator) -> Tensor:
    """Real-ESRGAN second-order degradation of hr (B,3,H,W) in [0,1] -> LR (B,3,H/s,W/s).

    H and W must be multiples of ``cfg.scale``. Runs on hr's device; ``generator`` is a CPU
    generator that drives every random choice. The output is clamped to [0,1] and rounded to
    8-bit levels.
    """
    _check_cpu_generator(generator)
    b, _, h, w = hr.shape
    s = cfg.scale
    if h % s or w % s:
        raise ValueError(f"HR size {h}x{w} is not a multiple of the scale {s}")
    lr_size = (h // s, w // s)
    noise_gen = _device_generator(hr.device, generator)

    x = _degradation_stage(hr, cfg.first, (h, w), cfg, generator, noise_gen)
    second = _bernoulli(b, cfg.second_stage_prob, generator)
    lr = hr.new_empty(b, 3, *lr_size)
    for with_second in (False, True):
        idx = (second == with_second).nonzero().flatten()
        if idx.numel() == 0:
            continue
        idx = to_device_async(idx, hr.device)
        y = x[idx]
        if with_second:
            y = _degradation_stage(y, cfg.second, lr_size, cfg, generator, noise_gen)
        lr[idx] = _final_stage(y, lr_size, cfg, generator)
    return quantize_8bit(lr)
