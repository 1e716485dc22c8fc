"""The torch-free definitions the CPU runtime and the checkpoint reader use, against the torch
model they describe: ``model.layout.DenoiserLayout`` against ``Denoiser`` (names, shapes,
strides, shortcuts, attention heads and shifts, the full-precision tensors), the format's
expected tensors against the torch skeleton's state dict, and ``DiffusionConfig``'s one-step
constants against ``ResShiftSchedule``."""

from __future__ import annotations

import pytest
import torch

from bimacosr_app.checkpoint.format import expected_tensors, fp32_parameter_count, is_time_path
from bimacosr_app.model import (
    Denoiser,
    DiffusionConfig,
    ModelConfig,
    ResShiftSchedule,
    binarizable_layers,
)
from bimacosr_app.model.layout import DenoiserLayout, shortcut_matrix
from bimacosr_app.model.shortcut import ShortcutConv2d, ShortcutLinear

ARCHITECTURES = {
    "default": ModelConfig(),
    "shortcuts": ModelConfig(shortcuts=True),
    "narrow": ModelConfig(widths=(16, 24, 40), res_blocks=3, attn_levels=(0, 2), window=4,
                          head_dim=8, mlp_ratio=1.5),
    "narrow-shortcuts": ModelConfig(widths=(8, 8), res_blocks=1, attn_levels=(1,), window=2,
                                    head_dim=3, shortcuts=True, residual=False),
    "flat": ModelConfig(widths=(16,), res_blocks=3, attn_levels=()),
}


def skeleton(config: ModelConfig) -> Denoiser:
    with torch.device("meta"):
        return Denoiser(config)


@pytest.mark.parametrize("config", ARCHITECTURES.values(), ids=ARCHITECTURES.keys())
def test_layout_mirrors_the_torch_denoiser(config):
    net, layout = skeleton(config), DenoiserLayout(config)
    layers = layout.binary_layers()
    assert sorted(layer.name for layer in layers) == sorted(binarizable_layers(net))
    for layer in layers:
        module = net.get_submodule(layer.name)
        assert tuple(module.weight.shape) == layer.weight_shape, layer.name
        assert isinstance(module, torch.nn.Linear) == layer.linear
        if not layer.linear:
            assert module.stride == (layer.stride, layer.stride)
            assert module.padding == (layer.kernel // 2, layer.kernel // 2)
        assert isinstance(module, (ShortcutConv2d, ShortcutLinear)) == layer.layer_shortcut
    binary = {layer.name for layer in layers}
    fp = {k: tuple(v.shape) for k, v in net.state_dict().items()
          if not is_time_path(k) and k.rpartition(".")[0] not in binary}
    assert layout.full_precision_tensors() == fp
    for conv in (layout.conv_in, layout.conv_out):
        assert tuple(net.get_submodule(conv.name).weight.shape) == conv.weight_shape
    for stage in layout.stages():
        res = net.get_submodule(stage.res.prefix)
        assert res.units == stage.res.units
        assert (stage.res.skip is None) == isinstance(res.skip, torch.nn.Identity)
        if stage.attn is not None:
            swin = net.get_submodule(stage.attn.prefix)
            assert (swin.shift, swin.window, swin.attn.heads) == (
                stage.attn.shift, stage.attn.window, stage.attn.heads)


@pytest.mark.parametrize("config", ARCHITECTURES.values(), ids=ARCHITECTURES.keys())
@pytest.mark.parametrize("binarization", [
    {"rank": 8, "smb": True, "lrmb": True},
    {"rank": 3, "smb": False, "lrmb": True, "act_shift": True},
    {"rank": 8, "smb": True, "lrmb": False, "shortcut": True},
])
def test_expected_tensors_follow_the_torch_state_dict(config, binarization):
    """Every FP tensor of the folded network under its state-dict name, every binarized
    layer's tensors with their shapes (bits along Cin, branches, thresholds)."""
    net = skeleton(config)
    specs = expected_tensors(config, binarization)
    binary = set(binarizable_layers(net))
    for name, value in net.state_dict().items():
        prefix = name.rpartition(".")[0]
        if is_time_path(name) or prefix in binary:
            continue
        assert specs[name].shape == tuple(value.shape)
        assert specs[name].dtype == ("F32" if value.dim() == 1 else "F16")
    for prefix in binary:
        w = net.get_submodule(prefix).weight
        cout, cin = w.shape[:2]
        assert specs[f"{prefix}.bits"].shape == (cout, *w.shape[2:], (cin + 63) // 64)
        assert (f"{prefix}.rprelu.slope" in specs) == (w.dim() == 4)
        assert (f"{prefix}.smb.index" in specs) == binarization["smb"]
        assert (f"{prefix}.lrmb.up" in specs) == binarization["lrmb"]
        assert (f"{prefix}.act_shift" in specs) == binarization.get("act_shift", False)
    assert fp32_parameter_count(config) == sum(
        v.numel() for k, v in net.state_dict().items() if not is_time_path(k))


def test_shortcut_matrix_is_the_models():
    from bimacosr_app.model.shortcut import apply_shortcut

    for cout, cin in [(4, 4), (3, 8), (4, 6), (8, 3), (5, 7), (1, 9), (160, 320)]:
        m = shortcut_matrix(cout, cin)
        x = torch.randn(2, cin, 3, 5)
        want = apply_shortcut(x, cout, 1)
        got = torch.einsum("oi,bihw->bohw", torch.from_numpy(m), x)
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("config", [
    DiffusionConfig(), DiffusionConfig(steps=4), DiffusionConfig(steps=4, kappa=0.0),
    DiffusionConfig(steps=7, power=0.5, kappa=1.5, sqrt_eta_start=0.03, sqrt_eta_end=0.95),
])
def test_one_step_constants_equal_the_schedules(config):
    schedule, t = ResShiftSchedule(config), config.steps - 1
    assert config.last_sqrt_eta() == float(schedule.sqrt_eta[-1])
    assert config.prior_noise_scale() == schedule.kappa * float(schedule.sqrt_eta[-1])
    assert config.one_step_input_scale() == schedule.input_scale(t)
