"""Tests of the training data pipeline: degradations, crops, pairs, validation sets.

Uses the real photos of the shared validation folder (val_photos.py; a few only, to stay fast
on CPU).
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from val_photos import val_photos

from bimacosr_app.training import data
from bimacosr_app.training import degradations as deg


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / float(((a - b) ** 2).mean()))


def _is_8bit(x: torch.Tensor) -> bool:
    return bool(((x * 255 - torch.round(x * 255)).abs() < 1e-3).all())


@pytest.fixture(scope="module")
def few_dir(tmp_path_factory):
    """A folder with the first three validation photos (symlinks), to keep tests fast."""
    folder = tmp_path_factory.mktemp("photos")
    for path in val_photos()[:3]:
        (folder / path.name).symlink_to(path)
    return folder


@pytest.fixture(scope="module")
def photos(few_dir) -> data.PhotoSet:
    return data.PhotoSet(few_dir, max_side=768)


@pytest.fixture(scope="module")
def hr_crops(photos) -> torch.Tensor:
    return data.sample_hr_crops(photos, 6, 256, generator=torch.Generator().manual_seed(0))


def test_photoset_decodes_real_photos(photos):
    assert len(photos) == 3
    for name, img in zip(photos.names, photos.images, strict=True):
        assert img.dtype == torch.uint8 and img.shape[0] == 3
        assert max(img.shape[1:]) <= 768
        with Image.open(photos.folder / name) as im:
            w, h = im.size
        assert abs(img.shape[2] / img.shape[1] - w / h) < 0.01
        assert img.float().std() > 10  # a real picture, not a blank


def test_hr_crops_shape_range_and_seed(photos, hr_crops):
    assert hr_crops.shape == (6, 3, 256, 256) and hr_crops.dtype == torch.float32
    assert hr_crops.min() >= 0 and hr_crops.max() <= 1
    again = data.sample_hr_crops(photos, 6, 256, generator=torch.Generator().manual_seed(0))
    other = data.sample_hr_crops(photos, 6, 256, generator=torch.Generator().manual_seed(1))
    assert torch.equal(hr_crops, again)
    assert not torch.equal(hr_crops, other)


def test_hr_crops_at_scale_one_are_the_photos_own_pixels(photos, hr_crops):
    """scale_range (1, 1) crops without resampling: the crops hold 8-bit values and each
    one's corner colour occurs in a photo; the default range resamples (values between
    levels)."""
    native = data.sample_hr_crops(photos, 6, 64, generator=torch.Generator().manual_seed(0),
                                  scale_range=(1.0, 1.0))
    assert _is_8bit(native) and not _is_8bit(hr_crops)
    pixels = [img.permute(1, 2, 0).reshape(-1, 3) for img in photos.images]
    for crop in native:
        corner = torch.round(crop[:, 0, 0] * 255).to(torch.uint8)
        assert any((p == corner).all(1).any() for p in pixels)


def test_realesrgan_shapes_levels_and_seeding(hr_crops):
    cfg = deg.RealESRGANConfig()
    lr = deg.realesrgan_degrade(hr_crops, cfg, torch.Generator().manual_seed(5))
    assert lr.shape == (6, 3, 64, 64)
    assert lr.min() >= 0 and lr.max() <= 1 and _is_8bit(lr)
    same = deg.realesrgan_degrade(hr_crops, cfg, torch.Generator().manual_seed(5))
    other = deg.realesrgan_degrade(hr_crops, cfg, torch.Generator().manual_seed(6))
    assert torch.equal(lr, same)
    assert not torch.equal(lr, other)
    # A degraded LR still resembles its source.
    ref = deg.bicubic_downscale(hr_crops)
    assert _psnr(lr, ref) > 15


def test_realesrgan_all_branches_run(hr_crops):
    """Force every optional branch (second stage, sinc, plateau, Poisson + grey noise)."""
    stage = deg.StageConfig(
        kernel_probs=(0, 0, 0, 0, 0, 1), sinc_prob=0.5, gaussian_noise_prob=0, gray_noise_prob=0.5
    )
    cfg = deg.RealESRGANConfig(first=stage, second=stage, second_stage_prob=1.0)
    lr = deg.realesrgan_degrade(hr_crops[:3, :, :128, :96], cfg, torch.Generator().manual_seed(0))
    assert lr.shape == (3, 3, 32, 24) and _is_8bit(lr)


def test_bicubic_downscale(hr_crops):
    lr = deg.bicubic_downscale(hr_crops, 4)
    assert lr.shape == (6, 3, 64, 64) and _is_8bit(lr)
    assert lr.min() >= 0 and lr.max() <= 1
    flat = torch.full((1, 3, 32, 32), 0.4)
    assert torch.allclose(deg.bicubic_downscale(flat), torch.full((1, 3, 8, 8), 102 / 255))


def test_make_pairs_mixes_tracks(hr_crops):
    g = torch.Generator().manual_seed(2)
    lr, hr = data.make_pairs(hr_crops, data.DegradationConfig(realistic_fraction=0.5), g)
    assert hr is hr_crops and lr.shape == (6, 3, 64, 64) and _is_8bit(lr)
    bicubic = deg.bicubic_downscale(hr_crops)
    is_bicubic = [torch.equal(a, b) for a, b in zip(lr, bicubic, strict=True)]
    assert any(is_bicubic) and not all(is_bicubic)
    all_bicubic, _ = data.make_pairs(hr_crops, data.DegradationConfig(realistic_fraction=0.0), g)
    assert torch.equal(all_bicubic, bicubic)


def test_train_batches_seeded_per_rank(photos):
    cfg = data.DegradationConfig()

    def first(seed: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        return next(data.TrainBatches(photos, 2, 64, cfg, seed=seed, rank=rank))

    lr, hr = first(0, 0)
    assert lr.shape == (2, 3, 16, 16) and hr.shape == (2, 3, 64, 64)
    assert torch.equal(first(0, 0)[0], lr)
    assert not torch.equal(first(0, 1)[1], hr)


def _kernel_args(n: int, **kw) -> dict:
    args = {
        "sigma_x": torch.full((n,), 2.0),
        "sigma_y": torch.full((n,), 2.0),
        "theta": torch.zeros(n),
        "beta": torch.ones(n),
        "plateau": torch.zeros(n, dtype=torch.bool),
        "kernel_size": torch.full((n,), 21),
    }
    args.update(kw)
    return args


def test_kernels_normalised_and_symmetric():
    n = 4
    sizes = torch.tensor([7, 11, 15, 21])
    iso = [
        deg.bivariate_kernels(**_kernel_args(n, kernel_size=sizes)),
        deg.bivariate_kernels(**_kernel_args(n, beta=torch.tensor([0.5, 1.5, 3.0, 4.0]))),
        deg.bivariate_kernels(
            **_kernel_args(n, beta=torch.tensor([1.0, 1.2, 1.5, 2.0]), plateau=torch.ones(n) > 0)
        ),
        deg.circular_lowpass_kernels(torch.tensor([1.1, 1.5, 2.0, 3.0]), sizes),
    ]
    for k in iso:
        assert torch.allclose(k.sum((1, 2)), torch.ones(n), atol=1e-5)
        assert torch.allclose(k, k.flip(-1), atol=1e-7)
        assert torch.allclose(k, k.flip(-2), atol=1e-7)
        assert torch.allclose(k, k.transpose(-1, -2), atol=1e-7)
    # Kernel sizes cut the support.
    support = (iso[0] != 0).sum((1, 2))
    assert torch.equal(support, sizes**2)

    aniso = deg.bivariate_kernels(
        **_kernel_args(
            n,
            sigma_x=torch.full((n,), 3.0),
            sigma_y=torch.full((n,), 0.5),
            theta=torch.tensor([0.3, -1.0, 2.0, 0.0]),
        )
    )
    assert torch.allclose(aniso.sum((1, 2)), torch.ones(n), atol=1e-5)
    assert torch.allclose(aniso, aniso.flip(-1, -2), atol=1e-7)  # point symmetric
    assert not torch.allclose(aniso, aniso.transpose(-1, -2), atol=1e-4)


def test_random_kernels_sum_to_one():
    g = torch.Generator().manual_seed(0)
    cfg = deg.RealESRGANConfig()
    for k in (
        deg.random_blur_kernels(64, cfg.first, cfg.kernel_sizes, g),
        deg.random_blur_kernels(64, cfg.second, cfg.kernel_sizes, g),
        deg.random_final_sinc_kernels(64, cfg, g),
    ):
        assert k.shape == (64, 21, 21) and torch.isfinite(k).all()
        assert torch.allclose(k.sum((1, 2)), torch.ones(64), atol=1e-5)
        assert torch.allclose(k, k.flip(-1, -2), atol=1e-6)


def test_filter2d_identity_and_blur(hr_crops):
    x = hr_crops[:2]
    pulse = torch.zeros(2, 21, 21)
    pulse[:, 10, 10] = 1
    assert torch.allclose(deg.filter2d(x, pulse), x, atol=1e-6)
    box = torch.ones(2, 5, 5) / 25
    y = deg.filter2d(x, box)
    assert y.shape == x.shape and y.std() < x.std()


def _pil_jpeg(img: torch.Tensor, quality: int) -> torch.Tensor:
    """PIL (libjpeg) round trip of img (3,H,W) in [0,1], default 4:2:0 subsampling."""
    buf = io.BytesIO()
    arr = (img * 255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    with Image.open(buf) as im:
        out = np.asarray(im.convert("RGB")).copy()
    return torch.from_numpy(out).permute(2, 0, 1).float() / 255


def test_jpeg_matches_libjpeg(hr_crops):
    x = hr_crops[:2, :, :200, :216]  # not multiples of 16: exercises edge padding
    assert torch.equal(deg.jpeg_quant_tables(torch.tensor([50]))[0, 0, 0, 0], torch.tensor(16.0))
    out95 = deg.jpeg_compress(x, 95)
    assert out95.shape == x.shape and _is_8bit(out95)
    assert _psnr(out95, x) > 38
    out10 = deg.jpeg_compress(x, torch.tensor([10, 10]))
    assert _psnr(out10, x) < _psnr(out95, x) - 6
    for q, ours in ((95, out95), (10, out10)):
        for i in range(2):
            pil = _pil_jpeg(x[i], q)
            assert _psnr(ours[i], pil) > 40  # near bit-exact with libjpeg
            assert abs(_psnr(ours[i], x[i]) - _psnr(pil, x[i])) < 1.5


def test_jpeg_block_structure():
    """Low quality on a gentle ramp: blocks go flat and the steps sit on 8x8 block edges."""
    ramp = torch.linspace(0.3, 0.6, 64)
    img = (ramp[None, :] + 0.1 * ramp[:, None]).expand(1, 3, 64, 64).contiguous()

    def steps(q: int) -> tuple[float, float]:
        out = deg.jpeg_compress(img, q)[0, 0]  # (64,64)
        dx = (out[:, 1:] - out[:, :-1]).abs().mean(0)  # (63,) mean column steps
        return float(dx[7::8].mean()), float(torch.cat([dx[i::8] for i in range(7)]).mean())

    edges, inside = steps(10)
    assert edges > 3 * inside + 0.01
    edges, inside = steps(95)
    assert edges < 2 * inside  # high quality keeps the ramp smooth


def test_per_sample_quality(hr_crops):
    x = hr_crops[:2, :, :64, :64]
    mixed = deg.jpeg_compress(x, torch.tensor([90, 20]))
    assert torch.equal(mixed[0], deg.jpeg_compress(x[:1], 90)[0])
    assert torch.equal(mixed[1], deg.jpeg_compress(x[1:], 20)[0])


def test_validation_pairs_deterministic(few_dir):
    pairs = data.validation_pairs(track="bicubic", max_side=512)  # the default val folder
    assert len(pairs) == len(val_photos()) > 0
    for _, lr, hr in pairs:
        assert hr.shape[0] == lr.shape[0] == 3 and max(hr.shape[1:]) <= 512
        assert (lr.shape[1] * 4, lr.shape[2] * 4) == tuple(hr.shape[1:])
        assert lr.min() >= 0 and lr.max() <= 1 and hr.min() >= 0 and hr.max() <= 1
    again = data.validation_pairs(few_dir, track="bicubic", max_side=512)
    for (name, lr, hr), (name2, lr2, hr2) in zip(pairs[:3], again, strict=True):
        assert name == name2 and torch.equal(lr, lr2) and torch.equal(hr, hr2)


def test_validation_pairs_realistic_deterministic(few_dir):
    real = data.validation_pairs(few_dir, "realistic", seed=7, max_side=128)
    again = data.validation_pairs(few_dir, "realistic", seed=7, max_side=128)
    bicubic = data.validation_pairs(few_dir, "bicubic", max_side=128)
    for (_, lr, hr), (_, lr2, _), (_, lr_bicubic, _) in zip(real, again, bicubic, strict=True):
        assert torch.equal(lr, lr2) and _is_8bit(lr)
        assert (lr.shape[1] * 4, lr.shape[2] * 4) == tuple(hr.shape[1:])
        assert not torch.equal(lr, lr_bicubic)


def test_default_data_dir():
    assert data.default_data_dir("train").name == "train"
    assert data.default_data_dir("val").parent == data.default_data_dir("train").parent


def test_validation_pairs_whole_photos(few_dir):
    whole = data.validation_pairs(few_dir, "bicubic", max_side=None)
    for (name, lr, hr), path in zip(whole, data.list_photos(few_dir), strict=True):
        with Image.open(path) as im:
            w, h = im.size
        assert tuple(hr.shape[1:]) == (h // 4 * 4, w // 4 * 4), name  # only the multiple of 4
        assert (lr.shape[1] * 4, lr.shape[2] * 4) == tuple(hr.shape[1:])
