"""The CUDA backend: its densified network equals the 1-bit network exactly in float32 (runs
everywhere); on a GPU every fp16 layer matches the float32 layer of the ``reference`` backend
on the shipped checkpoint, and whole images run (skipped without CUDA; run on the GPU machine,
see docs/BENCHMARKS.md)."""

from __future__ import annotations

import pytest
import torch
from random_checkpoints import random_checkpoint
from val_photos import val_photos

from bimacosr_app.engine import select_backend
from bimacosr_app.engine.cuda import densify
from bimacosr_app.model import (
    BinaryConv2d,
    BinaryLinear,
    ModelConfig,
    ResShiftSchedule,
    upscale_tile,
)
from bimacosr_app.training.data import decode_photo

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _photo_crop(h: int, w: int) -> torch.Tensor:
    photo = decode_photo(val_photos()[3])
    return (photo[:, 100:100 + h, 120:120 + w].float() / 255)[None]  # (1,3,h,w)


@pytest.mark.parametrize("which", ["shipped", "two-bases"])
def test_densified_network_equals_binary_network_in_float32(tmp_path, which):
    # two bases, no shortcuts: densify sums a shortcut into the branch's matrix, which rounds
    # differently and flips signs in a random network
    checkpoint = None if which == "shipped" else random_checkpoint(
        tmp_path / "b.safetensors", 2, ModelConfig(), 0.0, act_shift=True, gain=True,
        lr_act_bases=2)
    reference = select_backend("reference", checkpoint)
    dense = densify(reference.checkpoint.to_model(torch.device("cpu")))
    assert which == "shipped" or any(getattr(m, "act_bases", 1) == 2 for m in dense.modules())
    schedule = ResShiftSchedule(reference.schedule.config)
    lr = _photo_crop(37, 53)
    with torch.inference_mode():
        expected = upscale_tile(reference.model, schedule, lr, seed=5)
        got = upscale_tile(dense, schedule, lr, seed=5)
    # same operations on the same float32 values: only conv algorithm choice may differ
    assert (got - expected).abs().max() <= 1e-5


@needs_cuda
def test_cuda_layers_match_reference_layers():
    """Each densified fp16 layer, fed the reference network's own input to that layer, gives
    the float32 layer's output up to fp16 rounding. (Whole images are compared in
    test_cuda_backend_runs_whole_images: a 1-bit network can flip the sign of a near-zero
    activation under any rounding change and that difference then spreads.)"""
    reference = select_backend("reference")
    model = reference.model
    inputs = {}
    layers = [(name, m) for name, m in model.named_modules()
              if isinstance(m, (BinaryConv2d, BinaryLinear))]
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: inputs.__setitem__(
        name, (args[0].detach(), out.detach()))) for name, m in layers]
    reference.upscale(_photo_crop(64, 80), seed=3)
    for h in hooks:
        h.remove()
    dense = densify(reference.checkpoint.to_model(torch.device("cpu")))
    dense = dense.to("cuda", torch.float16)
    worst = 0.0
    for name, (x, expected) in inputs.items():
        with torch.inference_mode():
            got = dense.get_submodule(name)(x.to("cuda", torch.float16)).float().cpu()
        rel = float((got - expected).norm() / expected.norm().clamp_min(1e-12))
        worst = max(worst, rel)
        assert rel <= 2e-2, f"{name}: relative error {rel:.2e}"
    assert len(inputs) == len(layers) and worst > 0


@needs_cuda
def test_cuda_backend_runs_whole_images():
    cuda = select_backend("cuda")
    reference = select_backend("reference")
    assert cuda.device.type == "cuda"
    lr = _photo_crop(64, 80)
    out = cuda.upscale(lr, seed=3)
    expected = reference.upscale(lr, seed=3)
    assert out.shape == expected.shape == (1, 3, 256, 320)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert torch.equal(cuda.upscale(lr, seed=3), out)
    diff = (out - expected).abs()
    print(f"cuda vs reference on a 64x80 photo crop: max {float(diff.max()) * 255:.2f}/255, "
          f"mean {float(diff.mean()) * 255:.3f}/255")
