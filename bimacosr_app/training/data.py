"""Training and validation data: photos in memory, random HR crops, LR/HR pairs.

Photos are decoded once into uint8 tensors on the training device; every batch is cut,
augmented and degraded there (see :mod:`bimacosr_app.training.degradations`), so the data path
needs no worker processes. All random choices come from an explicit CPU ``torch.Generator``.

Two LR tracks are mixed per sample: the plain antialiased bicubic ÷4 and the Real-ESRGAN
second-order degradation. Validation pairs are deterministic and computed on the CPU.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

from bimacosr_app.training.degradations import (
    RealESRGANConfig,
    bicubic_downscale,
    realesrgan_degrade,
    to_device_async,
)

__all__ = [
    "PHOTO_SUFFIXES",
    "DegradationConfig",
    "PhotoSet",
    "TrainBatches",
    "decode_photo",
    "default_data_dir",
    "list_photos",
    "make_pairs",
    "sample_hr_crops",
    "validation_pairs",
]

PHOTO_SUFFIXES = (".webp", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

#: Seed offset between data-parallel ranks (a prime, so (seed, rank) pairs rarely collide).
RANK_SEED_STRIDE = 1_000_003


def default_data_dir(split: str) -> Path:
    """Folder of a data split (``"train"`` or ``"val"``).

    ``<repo>/../shared/data/<split>`` (the development layout) if it exists, else
    ``<repo>/shared/data/<split>`` (the training machine, where ``shared/`` lands inside the
    repository); the first is returned when neither exists, so errors name the usual place.
    """
    repo = Path(__file__).resolve().parents[2]
    candidates = (repo.parent / "shared" / "data" / split, repo / "shared" / "data" / split)
    return next((c for c in candidates if c.is_dir()), candidates[0])


def list_photos(folder: str | Path) -> list[Path]:
    """Photo files in ``folder`` (not recursive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"photo folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)


def decode_photo(path: str | Path, max_side: int | None = None) -> Tensor:
    """Decode a photo to a uint8 (3,H,W) tensor: EXIF orientation applied, converted to RGB,
    Lanczos-downscaled so the long side is at most ``max_side`` (if given)."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
    if max_side is not None and max(im.size) > max_side:
        f = max_side / max(im.size)
        im = im.resize(
            (max(1, round(im.width * f)), max(1, round(im.height * f))), Image.Resampling.LANCZOS
        )
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()  # (3,H,W)


class PhotoSet:
    """Every photo of a folder, decoded once, as uint8 (3,H,W) tensors on ``device``."""

    def __init__(
        self, folder: str | Path, device: str | torch.device = "cpu", max_side: int | None = None
    ) -> None:
        paths = list_photos(folder)
        if not paths:
            raise FileNotFoundError(f"no photos in {folder}")
        self.folder = Path(folder)
        self.names = [p.name for p in paths]
        self.images = [decode_photo(p, max_side).to(device) for p in paths]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i]

    @property
    def device(self) -> torch.device:
        return self.images[0].device

    @property
    def megapixels(self) -> float:
        return sum(im.shape[1] * im.shape[2] for im in self.images) / 1e6


def sample_hr_crops(
    photos: PhotoSet,
    batch: int,
    size: int = 256,
    *,
    generator: torch.Generator,
    scale_range: tuple[float, float] = (0.5, 1.0),
) -> Tensor:
    """Random HR training crops, float (B,3,size,size) in [0,1] on the photos' device.

    Photos are drawn with probability proportional to their pixel count (every pixel equally
    likely). One rescale factor s ~ U(scale_range) per call: each sample crops a square of side
    ``size/s`` (capped by the smallest chosen photo) that one batched antialiased-bicubic resize
    brings to ``size``. Then a random element of the dihedral group per sample (horizontal
    flip, vertical flip, transpose: flips and 90° rotations). ``generator`` is a CPU generator.
    """
    areas = torch.tensor([float(im.shape[1] * im.shape[2]) for im in photos.images])
    which = torch.multinomial(areas, batch, replacement=True, generator=generator).tolist()
    s = float(torch.empty(1).uniform_(*scale_range, generator=generator))
    side = min(round(size / s), *(min(photos[i].shape[1:]) for i in which))
    heights = torch.tensor([photos[i].shape[1] for i in which])
    widths = torch.tensor([photos[i].shape[2] for i in which])
    top = (torch.rand(batch, generator=generator) * (heights - side + 1)).long().tolist()
    left = (torch.rand(batch, generator=generator) * (widths - side + 1)).long().tolist()
    crops = torch.stack(
        [photos[i][:, y : y + side, x : x + side] for i, y, x in zip(which, top, left, strict=True)]
    )  # (B,3,side,side) uint8; the loop only slices views
    hr = crops.float() / 255
    if side != size:
        hr = F.interpolate(
            hr, size=(size, size), mode="bicubic", antialias=True, align_corners=False
        ).clamp(0, 1)

    flips = (torch.rand(3, batch, generator=generator) < 0.5).view(3, batch, 1, 1, 1)
    flips = to_device_async(flips, hr.device)
    hr = torch.where(flips[0], hr.flip(-1), hr)
    hr = torch.where(flips[1], hr.flip(-2), hr)
    return torch.where(flips[2], hr.transpose(-1, -2), hr)


@dataclass(frozen=True)
class DegradationConfig:
    """How LR inputs are made: the share of the Real-ESRGAN track (the rest is bicubic ÷scale)
    and the Real-ESRGAN settings (whose ``scale`` both tracks use)."""

    realistic_fraction: float = 0.5
    realesrgan: RealESRGANConfig = field(default_factory=RealESRGANConfig)

    @property
    def scale(self) -> int:
        return self.realesrgan.scale


def make_pairs(
    hr: Tensor, cfg: DegradationConfig, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """LR/HR pairs from HR crops hr (B,3,H,W): returns (lr (B,3,H/s,W/s), hr).

    Each sample takes the Real-ESRGAN track with probability ``cfg.realistic_fraction``, else
    the bicubic track. LR is in [0,1] on 8-bit levels, on hr's device.
    """
    b, _, h, w = hr.shape
    s = cfg.scale
    realistic = torch.rand(b, generator=generator) < cfg.realistic_fraction
    lr = hr.new_empty(b, 3, h // s, w // s)
    for use_realistic in (False, True):
        idx = (realistic == use_realistic).nonzero().flatten()
        if idx.numel() == 0:
            continue
        idx = to_device_async(idx, hr.device)
        if use_realistic:
            lr[idx] = realesrgan_degrade(hr[idx], cfg.realesrgan, generator)
        else:
            lr[idx] = bicubic_downscale(hr[idx], s)
    return lr, hr


class TrainBatches(Iterator[tuple[Tensor, Tensor]]):
    """Endless (lr, hr) batches: random crops of ``photos`` degraded by ``make_pairs``.

    The stream is a function of (seed, rank) and the device: data-parallel ranks pass their
    rank to draw different batches. ``generator`` (CPU) holds the whole state, so
    ``generator.get_state()`` / ``set_state()`` checkpoint and resume the stream.
    """

    def __init__(
        self,
        photos: PhotoSet,
        batch_size: int,
        crop_size: int = 256,
        config: DegradationConfig | None = None,
        seed: int = 0,
        rank: int = 0,
        scale_range: tuple[float, float] = (0.5, 1.0),
    ) -> None:
        self.config = config or DegradationConfig()
        if crop_size % self.config.scale:
            raise ValueError(f"crop_size {crop_size} is not a multiple of {self.config.scale}")
        self.photos = photos
        self.batch_size = batch_size
        self.crop_size = crop_size
        self.scale_range = scale_range
        self.generator = torch.Generator().manual_seed(seed + RANK_SEED_STRIDE * rank)

    def __next__(self) -> tuple[Tensor, Tensor]:
        hr = sample_hr_crops(
            self.photos,
            self.batch_size,
            self.crop_size,
            generator=self.generator,
            scale_range=self.scale_range,
        )
        return make_pairs(hr, self.config, self.generator)


def _center_crop(img: Tensor, max_side: int | None, multiple: int) -> Tensor:
    """Centre crop of img (C,H,W) to at most max_side per side (None: the whole image), sides
    multiples of ``multiple``."""
    h, w = img.shape[-2:]
    ch = min(h, max_side or h) // multiple * multiple
    cw = min(w, max_side or w) // multiple * multiple
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[:, top : top + ch, left : left + cw]


def validation_pairs(
    folder: str | Path | None = None,
    track: Literal["bicubic", "realistic"] = "bicubic",
    seed: int = 1234,
    max_side: int | None = 512,
) -> list[tuple[str, Tensor, Tensor]]:
    """Deterministic validation pairs ``(name, lr (3,h/4,w/4), hr (3,h,w))``, float in [0,1], CPU.

    HR is each photo of ``folder`` (default: the ``val`` split) centre-cropped to at most
    ``max_side`` per side (None: the whole photo) and to multiples of 4. LR comes from the
    given track with the default Real-ESRGAN settings; the realistic track seeds each image
    with ``seed + crc32(name)``, so numbers compare across runs and machines.
    """
    if track not in ("bicubic", "realistic"):
        raise ValueError(f"unknown track {track!r}")
    cfg = RealESRGANConfig()
    folder = default_data_dir("val") if folder is None else Path(folder)
    pairs = []
    for path in list_photos(folder):
        hr = _center_crop(decode_photo(path), max_side, cfg.scale).float()[None] / 255
        if track == "bicubic":
            lr = bicubic_downscale(hr, cfg.scale)
        else:
            g = torch.Generator().manual_seed(seed + zlib.crc32(path.name.encode()))
            lr = realesrgan_degrade(hr, cfg, g)
        pairs.append((path.name, lr[0], hr[0]))
    return pairs
