"""The network: schedule, latent, binarized layers (exact formulas), binarize(), model_cost."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bimacosr_app.model import (
    BinaryConv2d,
    BinaryLinear,
    Denoiser,
    DiffusionConfig,
    ModelConfig,
    ResShiftSchedule,
    bicubic_upscale,
    binarizable_layers,
    binarize,
    calibrate_act_shift,
    calibrate_gain,
    from_latent,
    model_cost,
    resolution_level,
    set_binary_mix,
    set_scale_gradient,
    to_latent,
    upscale_tile,
)
from bimacosr_app.model.binary import _ApproxSign, _ClippedSign, binarize_activation
from bimacosr_app.model.shortcut import (
    ShortcutConv2d,
    ShortcutLinear,
    apply_shortcut,
    shortcut_matrix,
)

# sqrt(eta_t) for T = 15, p = 0.3, sqrt(eta_0) = 0.02, sqrt(eta_14) = 0.99 (docs/ARCHITECTURE.md)
SQRT_ETA_T15 = [0.02, 0.117165, 0.176305, 0.233629, 0.291574, 0.351009, 0.412356, 0.475858,
                0.541672, 0.60991, 0.680658, 0.753985, 0.829951, 0.908606, 0.99]
CHANNELS = [1, 63, 64, 65, 127, 128, 129]


def test_schedule_values_match_documented_list():
    s = ResShiftSchedule()
    assert s.steps == 15 and s.kappa == 2.0
    np.testing.assert_allclose(s.sqrt_eta.numpy(), SQRT_ETA_T15, atol=5e-7)
    np.testing.assert_allclose(s.eta.numpy(), np.square(SQRT_ETA_T15), atol=1e-6)
    assert s.input_scale(14) == pytest.approx(1 / np.sqrt(4 * 0.99**2 + 1))


def test_deterministic_step_maps_forward_marginals_exactly():
    # With the true x0, the step t -> t-1 turns q_sample(t, eps) into q_sample(t-1, eps).
    s = ResShiftSchedule()
    g = torch.Generator().manual_seed(0)
    x0, y, eps = (torch.randn(2, 48, 5, 7, generator=g, dtype=torch.float64) for _ in range(3))
    for t in range(1, s.steps):
        k, m, j = s.step_coefficients(t)
        assert k + m + j == pytest.approx(1.0)
        x_t = s.q_sample(x0, y, t, eps)
        torch.testing.assert_close(s.ddim_step(x0, x_t, y, t), s.q_sample(x0, y, t - 1, eps))
    assert s.step_coefficients(0) == (1.0, 0.0, 0.0)
    # the prior replaces x0 + eta_T (y - x0) by y: they differ by (1 - eta_T)(y - x0)
    prior = s.prior_sample(y, eps)
    shift = (1 - s.eta[-1]) * (y - x0)
    torch.testing.assert_close(prior, s.q_sample(x0, y, s.steps - 1, eps) + shift)


def test_pixel_unshuffle_round_trip_is_exact():
    img = torch.rand(2, 3, 36, 52)
    z = to_latent(img)
    assert z.shape == (2, 48, 9, 13)
    assert torch.equal(from_latent(z), img)


def _float64_binary_conv(x, w_b, bias, stride):
    """DESIGN.md 3: y[p,o] = beta_o sum_t alpha[p+t] (Cin - 2 popcount(xbits ^ wbits)) + b_o,
    with alpha = 0 at padded pixels. Bits: 1 = negative, sign(0) = +1."""
    x = x.double().numpy()[0]  # (Cin, H, W)
    w = w_b.double().numpy()  # (Cout, Cin, k, k)
    cin, h, wd = x.shape
    cout, _, k, _ = w.shape
    pad = k // 2
    alpha = np.abs(x).mean(axis=0)
    xbits = np.pad(x < 0, ((0, 0), (pad, pad), (pad, pad)))
    alpha = np.pad(alpha, pad)
    wbits = w < 0
    beta = np.abs(w).mean(axis=(1, 2, 3))
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    y = np.zeros((cout, ho, wo))
    for dy in range(k):
        for dx in range(k):
            xs = xbits[:, dy: dy + stride * ho: stride, dx: dx + stride * wo: stride]
            a = alpha[dy: dy + stride * ho: stride, dx: dx + stride * wo: stride]
            mism = (xs[None] ^ wbits[:, :, dy, dx, None, None]).sum(axis=1)  # popcount
            y += a[None] * (cin - 2 * mism)
    return beta[:, None, None] * y + bias.double().numpy()[:, None, None]


@pytest.mark.parametrize("cin", CHANNELS)
@pytest.mark.parametrize("stride", [1, 2])
def test_binary_conv_equals_popcount_formula(cin, stride):
    g = torch.Generator().manual_seed(cin * 10 + stride)
    cout = CHANNELS[(CHANNELS.index(cin) + 3) % len(CHANNELS)]
    conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
    layer = BinaryConv2d.from_conv(conv, rank=4, generator=g)
    with torch.no_grad():
        for p in layer.rprelu.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    x = torch.randn(1, cin, 9, 7, generator=g)
    x[0, :, 2, 3] = 0.0  # sign(0) = +1
    expected = _float64_binary_conv(x, layer.weight.detach(), layer.bias.detach(), stride)
    r = layer.rprelu
    u = expected + r.shift_in.detach().double().numpy()[:, None, None]
    slope = r.slope.detach().double().numpy()[:, None, None]
    expected = np.where(u > 0, u, slope * u) + r.shift_out.detach().double().numpy()[:, None, None]
    branch = layer.branch_matrix().detach().double().numpy()
    xs = x.double().numpy()[0][:, ::stride, ::stride]
    expected = expected + np.einsum("oi,ihw->ohw", branch, xs)
    with torch.no_grad():
        got = layer(x).double().numpy()[0]
    # float32 conv over <= 9*129 terms of size ~1: absolute error well under 1e-4
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("cin", CHANNELS)
def test_binary_linear_equals_popcount_formula(cin):
    g = torch.Generator().manual_seed(cin)
    lin = nn.Linear(cin, 65)
    layer = BinaryLinear.from_linear(lin, generator=g)
    x = torch.randn(3, 5, cin, generator=g)
    xd, w = x.double().numpy(), layer.weight.detach().double().numpy()
    mism = ((xd[..., None, :] < 0) ^ (w < 0)).sum(-1)  # (3,5,65)
    expected = (np.abs(xd).mean(-1, keepdims=True) * np.abs(w).mean(1) * (cin - 2 * mism)
                + layer.bias.detach().double().numpy()
                + xd @ layer.branch_matrix().detach().double().numpy().T)
    with torch.no_grad():
        got = layer(x).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("cin,cout,k,stride", [(64, 128, 3, 1), (129, 63, 3, 2), (65, 65, 1, 1)])
def test_decomposition_is_exact_at_conversion(cin, cout, k, stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)
    layer = BinaryConv2d.from_conv(conv, rank=8)
    w = conv.weight.detach()
    m = w.mean(dim=(2, 3))  # (Cout, Cin)
    # SMB: the n = 2 max(Cin, Cout) largest |M| entries, with M's values
    n = 2 * max(cin, cout)
    assert layer.smb_index.shape == (n,) and layer.smb_index.dtype == torch.int64
    top = set(torch.topk(m.abs().flatten(), n).indices.tolist())
    assert set(layer.smb_index.tolist()) == top
    s = layer.smb_matrix().detach()
    assert torch.equal(s.flatten()[layer.smb_index], m.flatten()[layer.smb_index])
    # LRMB: the rank-8 truncated SVD of M - S
    u, sv, vh = torch.linalg.svd((m - s).double())
    truncated = (u[:, :8] * sv[:8]) @ vh[:8]
    low = (layer.lrmb_up @ layer.lrmb_down).detach().double()
    torch.testing.assert_close(low, truncated, rtol=0, atol=1e-6)
    # W_b + centre(S + L) == W
    rebuilt = layer.weight.detach().clone()
    rebuilt[:, :, k // 2, k // 2] += s + low.float()
    torch.testing.assert_close(rebuilt, w, rtol=0, atol=1e-6)
    # and as functions: conv(x, W_b) + S x + L x == conv(x, W)
    x = torch.randn(1, cin, 11, 10)
    fp = nn.functional.conv2d(x, layer.weight, layer.bias, stride, k // 2) + layer.branches(x)
    torch.testing.assert_close(fp, conv(x), rtol=1e-4, atol=1e-4)


def test_ablation_switches():
    conv = nn.Conv2d(32, 32, 3, padding=1)
    bmb = BinaryConv2d.from_conv(conv, smb=False, lrmb=False)
    assert not bmb.has_smb and not bmb.has_lrmb and bmb.branches(torch.zeros(1, 32, 4, 4)) is None
    assert torch.equal(bmb.weight, conv.weight)
    lora = BinaryConv2d.from_conv(conv, smb=False, svd_init=False,
                                  generator=torch.Generator().manual_seed(0))
    assert torch.count_nonzero(lora.lrmb_up) == 0 and torch.count_nonzero(lora.lrmb_down) > 0
    assert torch.equal(lora.weight, conv.weight)  # L = 0 at start, nothing subtracted


def test_activation_ste_is_bireal_polynomial():
    x = torch.tensor([-1.5, -1.0, -0.5, -0.0, 0.0, 0.25, 0.75, 1.0, 2.0], requires_grad=True)
    y = _ApproxSign.apply(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1, 1, 1]
    y.backward(torch.ones_like(x))
    expected = torch.clamp(2 - 2 * x.detach().abs(), min=0)
    assert torch.equal(x.grad, expected)
    assert x.grad[0] == 0 and x.grad[3] == 2 and x.grad[2] == 1


def test_weight_ste_is_clipped_identity():
    w = torch.tensor([[-2.0, -1.0, -0.3, 0.0, 0.5, 1.0, 1.5]], requires_grad=True)
    _ClippedSign.apply(w).backward(torch.full_like(w, 3.0))
    assert w.grad.tolist() == [[0.0, 3.0, 3.0, 3.0, 3.0, 3.0, 0.0]]


def test_gradients_reach_every_trainable_tensor_with_their_shapes():
    torch.manual_seed(0)
    layer = BinaryConv2d.from_conv(nn.Conv2d(16, 24, 3, stride=2, padding=1), rank=4)
    x = torch.randn(2, 16, 9, 9, requires_grad=True)
    layer(x).square().mean().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert x.grad.shape == x.shape
    assert not layer.smb_index.requires_grad


def _tiny_config():
    return ModelConfig(widths=(16, 32, 32, 32), time_dim=32, head_dim=16)


def test_full_model_runs_on_odd_sizes_fp_and_binarized():
    torch.manual_seed(0)
    model = Denoiser(_tiny_config()).eval()
    schedule = ResShiftSchedule()
    lr = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        hr_fp = upscale_tile(model, schedule, lr, seed=3)
        binarize(model)
        hr_bin = upscale_tile(model, schedule, lr, seed=3)
    assert hr_fp.shape == hr_bin.shape == (1, 3, 148, 212)
    assert hr_fp.min() >= 0 and hr_fp.max() <= 1 and not torch.equal(hr_fp, hr_bin)
    assert all(isinstance(model.get_submodule(n), (BinaryConv2d, BinaryLinear))
               for n in binarizable_layers(model))


def test_default_model_size_and_binarized_layers():
    model = Denoiser()
    assert sum(p.numel() for p in model.parameters()) <= 8_000_000
    names = binarizable_layers(model)
    assert "conv_in" not in names and "conv_out" not in names
    assert not any("film" in n or "time_embed" in n for n in names)
    binarize(model)
    assert isinstance(model.conv_in, nn.Conv2d) and isinstance(model.conv_out, nn.Conv2d)
    assert isinstance(model.downsample[0].conv, BinaryConv2d)
    assert model.downsample[0].conv.stride == 2
    assert isinstance(model.down[2][0].attn.attn.qkv, BinaryLinear)
    with torch.no_grad():
        out = model(torch.randn(1, 48, 37, 53), torch.randn(1, 3, 37, 53), 14)
    assert out.shape == (1, 48, 37, 53)


def test_model_cost_matches_hand_count():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        BinaryConv2d.from_conv(nn.Conv2d(8, 8, 3, padding=1), rank=2),
        nn.Conv2d(8, 3, 3, padding=1),
    )
    cost = model_cost(model, 4, 4)
    px = 16
    first = (3 * 8 * 9 + 8, 3 * 8 * 9 * px)
    last = (8 * 3 * 9 + 3, 8 * 3 * 9 * px)
    w_bin = 8 * 8 * 9
    fp_extra = 8 + 3 * 8 + 2 * 8 + 2 * (8 + 8)  # bias, RPReLU, SMB n=16, LRMB rank 2
    branch_macs = (2 * 8 + 2 * (8 + 8)) * px
    assert cost.params == first[0] + w_bin + fp_extra + last[0]
    assert cost.params_effective == first[0] + w_bin / 32 + fp_extra + last[0]
    assert cost.macs == first[1] + w_bin * px + branch_macs + last[1]
    assert cost.ops_effective == first[1] + w_bin * px / 64 + branch_macs + last[1]



def test_model_cost_counts_the_shortcut_as_operations_only():
    """The parameter-free shortcut adds max(Cin, Cout) operations per output pixel and no
    parameter (a 6 -> 8 layer: 8 per pixel)."""
    conv = nn.Conv2d(6, 8, 3, padding=1)
    plain = model_cost(BinaryConv2d.from_conv(conv, rank=2), 4, 4)
    with_shortcut = model_cost(BinaryConv2d.from_conv(conv, rank=2, shortcut=True), 4, 4)
    assert with_shortcut.params == plain.params
    assert with_shortcut.params_effective == plain.params_effective
    assert with_shortcut.macs - plain.macs == 8 * 16
    assert with_shortcut.ops_effective - plain.ops_effective == 8 * 16


def test_model_cost_counts_activation_thresholds_as_parameters_only():
    """Each 1-bit layer's threshold adds Cin full-precision parameters and no operation."""
    plain_model = binarize(Denoiser(_tiny_config()))
    shifted_model = binarize(Denoiser(_tiny_config()), act_shift=True)
    plain, shifted = model_cost(plain_model, 64, 64), model_cost(shifted_model, 64, 64)
    thresholds = sum(m.in_features for m in shifted_model.modules()
                     if isinstance(m, (BinaryConv2d, BinaryLinear)))
    assert shifted.params - plain.params == thresholds
    assert shifted.params_effective - plain.params_effective == thresholds
    assert (shifted.macs, shifted.ops_effective) == (plain.macs, plain.ops_effective)


def test_model_cost_counts_a_second_activation_base_as_binary_operations():
    """Two activation bases run the layer's binary products twice: its binary MACs double
    (1/64 each, effective), its parameters and full-precision branches stay."""
    conv = nn.Conv2d(6, 8, 3, padding=1)
    one = BinaryConv2d.from_conv(conv, rank=2)
    two = copy.deepcopy(one)
    two.act_bases = 2
    plain, doubled = model_cost(one, 4, 4), model_cost(two, 4, 4)
    binary_macs = 6 * 8 * 9 * 16
    assert (doubled.params, doubled.params_effective) == (plain.params, plain.params_effective)
    assert doubled.macs - plain.macs == binary_macs
    assert doubled.ops_effective - plain.ops_effective == binary_macs / 64


def test_binarized_default_model_is_cheaper_by_paper_rule():
    fp = model_cost(Denoiser(), 64, 64)
    binary = model_cost(binarize(copy.deepcopy(Denoiser())), 64, 64)
    assert fp.params == fp.params_effective
    assert fp.params / binary.params_effective > 10
    assert fp.macs / binary.ops_effective > 8


@pytest.mark.parametrize("seed, top, left, h, w", [(0, 0, 0, 32, 24), (-7, 13, 2**31 + 5, 9, 11)])
def test_position_noise_native_uniforms_are_the_torch_definition(monkeypatch, seed, top, left,
                                                                 h, w):
    """On the CPU the uniforms come from the native kernels where they exist; the noise is
    bit-identical to the torch definition (the fallback), for every kernel."""
    from bimacosr_app.model import noise

    bk = pytest.importorskip("bimacosr_app._bitkernels")
    with monkeypatch.context() as m:
        m.setattr(noise, "_native_uniforms", lambda *args: None)
        want = noise.position_noise(seed, top, left, h, w, 48)
    assert noise._native_uniforms(seed, top, left, h, w, 48) is not None
    for kernel in bk.available_kernels():
        bk.set_kernel(kernel)
        try:
            assert torch.equal(noise.position_noise(seed, top, left, h, w, 48), want), kernel
        finally:
            bk.set_kernel("auto")


def test_shortcut_matrix_averages_narrowing_and_repeats_widening_inputs():
    assert torch.equal(shortcut_matrix(5, 5), torch.eye(5))
    x, skip = torch.randn(4), torch.randn(4)
    torch.testing.assert_close(shortcut_matrix(4, 8) @ torch.cat([x, skip]), (x + skip) / 2)
    assert torch.equal(shortcut_matrix(9, 3) @ x[:3], x[:3].repeat(3))
    for cout, cin in ((128, 160), (160, 128), (64, 129)):
        m = shortcut_matrix(cout, cin)
        torch.testing.assert_close(m.sum(dim=1), torch.ones(cout))  # each output: a mean
        assert (m > 0).any(dim=0).all()  # every input reaches some output


@pytest.mark.parametrize("stride", [1, 2])
def test_binarize_shortcut_is_a_fixed_unstored_branch_taken_out_of_the_weight(stride):
    """A plain layer converted with a shortcut keeps its function: the 1-bit part decomposes
    the weight minus the shortcut (centre tap), and the shortcut is added apart, unstored."""
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 4, 3, stride=stride, padding=1)
    plain = BinaryConv2d.from_conv(conv)
    with_shortcut = BinaryConv2d.from_conv(conv, shortcut=True)
    x = torch.randn(2, 6, 9, 7)
    for layer in (plain, with_shortcut):
        layer.binary_mix = 0.0  # the latent weights' FP product: the FP layer exactly
    torch.testing.assert_close(with_shortcut(x), conv(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain(x), conv(x), atol=1e-5, rtol=1e-5)
    assert "shortcut" not in with_shortcut.state_dict()
    linear = nn.Linear(6, 12)
    x = torch.randn(3, 6)
    with_shortcut = BinaryLinear.from_linear(linear, shortcut=True)
    with_shortcut.binary_mix = 0.0
    torch.testing.assert_close(with_shortcut(x), linear(x), atol=1e-5, rtol=1e-5)
    model = binarize(Denoiser(), shortcut=True)
    assert model.binarization["shortcut"] is True
    assert "shortcut" not in binarize(Denoiser()).binarization
    assert all(m.has_shortcut for m in model.modules()
               if isinstance(m, (BinaryConv2d, BinaryLinear)))


@pytest.mark.parametrize("cin, cout, stride", [(64, 64, 1), (64, 128, 2), (128, 64, 1)])
def test_exact_shortcut_takes_the_shortcut_out_of_the_1_bit_weight(cin, cout, stride):
    """A plain conv given a shortcut: by default its 1-bit weight keeps all but a ninth of the
    shortcut's negation (entries of -8/9 of it among small weights), which sign() turns into
    -beta, so the 1-bit layer adds most of the shortcut to the conv; with exact_shortcut SMB
    takes the negation whole, the 1-bit weight has no such entries, the 1-bit layer is much
    closer to the conv (its error is binarization's alone), and at binary_mix 0 both are the
    conv exactly."""
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
    default = BinaryConv2d.from_conv(conv, shortcut=True)
    exact = BinaryConv2d.from_conv(conv, shortcut=True, exact_shortcut=True)
    bound = conv.weight.abs().max().item()
    assert default.weight.abs().max() > 8 / 9 * shortcut_matrix(cout, cin).max() - bound
    assert default.weight.abs().max() > 4 * bound > 2 * exact.weight.abs().max()
    x = torch.randn(2, cin, 12, 12)
    with torch.no_grad():
        errors = [(layer(x) - conv(x)).square().mean() for layer in (default, exact)]
        assert errors[1] < 0.5 * errors[0]
        for layer in (default, exact):
            layer.binary_mix = 0.0
            torch.testing.assert_close(layer(x), conv(x), atol=1e-5, rtol=1e-5)
    # exact_shortcut changes the conversion of plain layers given a shortcut, nothing else
    for kwargs in ({"shortcut": False}, {}):
        a = BinaryConv2d.from_conv(conv, **kwargs)
        b = BinaryConv2d.from_conv(conv, exact_shortcut=True, **kwargs)
        assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    fp = Denoiser(_tiny_config()).eval()
    models = [binarize(copy.deepcopy(fp), shortcut=True, exact_shortcut=e) for e in (False, True)]
    assert models[0].binarization == models[1].binarization


def test_binary_mix_blends_from_the_fp_model_at_zero_to_the_1_bit_model_at_one():
    torch.manual_seed(0)
    fp = Denoiser(_tiny_config()).eval()
    model = binarize(copy.deepcopy(fp), rprelu_slope=0.25)
    x_t, lr = torch.randn(1, 48, 19, 21), torch.rand(1, 3, 19, 21) * 2 - 1
    with torch.no_grad():
        binary = model(x_t, lr, 14)
        set_binary_mix(model, 0.0)
        torch.testing.assert_close(model(x_t, lr, 14), fp(x_t, lr, 14), atol=2e-5, rtol=1e-4)
        set_binary_mix(model, 0.5)
        layer, x = model.downsample[0].conv, torch.randn(1, 16, 8, 8)
        fp_layer = F.conv2d(x, layer.weight, layer.bias, 2, 1)
        binary_layer = layer.rprelu(layer.binary_conv(x))
        torch.testing.assert_close(layer(x), (fp_layer + binary_layer) / 2 + layer.branches(x))
        set_binary_mix(model, 1.0)
        assert torch.equal(model(x_t, lr, 14), binary)
    with pytest.raises(ValueError, match="binary_mix"):
        set_binary_mix(model, 1.5)


def test_scale_gradient_off_keeps_the_function_and_stops_betas_pull_on_the_latent_weights():
    """Latent weights beyond the straight-through window (|W| > 1) get gradient only through
    beta = mean |W|: with the scale gradient on they get some, off exactly none, while the
    output and the gain's gradient stay the same."""
    torch.manual_seed(0)
    for layer, x in ((BinaryConv2d(6, 5, 3, gain=True), torch.randn(2, 6, 7, 7)),
                     (BinaryLinear(6, 5, gain=True), torch.randn(3, 6))):
        with torch.no_grad():
            layer.weight.copy_(torch.sign(layer.weight) * (1.5 + torch.rand_like(layer.weight)))
        results = []
        for on in (True, False):
            set_scale_gradient(layer, on)
            layer.zero_grad(set_to_none=True)
            y = layer(x)
            y.square().sum().backward()
            results.append((y.detach(), layer.weight.grad.clone(), layer.gain.grad.clone()))
        (y_on, w_on, g_on), (y_off, w_off, g_off) = results
        assert torch.equal(y_on, y_off) and torch.equal(g_on, g_off)
        assert w_on.abs().sum() > 0 and torch.equal(w_off, torch.zeros_like(w_off))


def test_two_activation_bases_binarize_the_first_bases_residual():
    """bases=2 adds the residual's sign at the residual's own per-pixel scale: exactly
    a1 sign(x) + a2 sign(x - a1 sign(x)), a closer approximation of x than one base; the
    residual's gradient reaches x (the first base a constant of it)."""
    torch.manual_seed(0)
    x = torch.randn(2, 65, 5, 7)  # centred, as a thresholded input is
    one = binarize_activation(x, 1)
    a1 = x.abs().mean(dim=1, keepdim=True)
    r = x - a1 * torch.where(x >= 0, 1.0, -1.0)
    a2 = r.abs().mean(dim=1, keepdim=True)
    two = binarize_activation(x, 1, bases=2)
    torch.testing.assert_close(two, one + a2 * torch.where(r >= 0, 1.0, -1.0))
    assert (x - two).square().mean() < 0.5 * (x - one).square().mean()
    with pytest.raises(ValueError, match="1 or 2"):
        binarize_activation(x, 1, bases=3)
    xg = x.clone().requires_grad_(True)
    binarize_activation(xg, 1, bases=2).sum().backward()
    xo = x.clone().requires_grad_(True)
    binarize_activation(xo, 1).sum().backward()
    assert not torch.equal(xg.grad, xo.grad)


def test_lr_act_bases_gives_the_lr_resolution_convolutions_two_bases():
    """binarize(lr_act_bases=2) gives two activation bases to the 1-bit convolutions whose
    output is at LR resolution (level 0) and to no other layer, records the option, and
    changes the function; 1 is the default and leaves no record."""
    torch.manual_seed(0)
    fp = Denoiser(_tiny_config()).eval()
    plain = binarize(copy.deepcopy(fp), act_shift=True)
    two = binarize(copy.deepcopy(fp), act_shift=True, lr_act_bases=2)
    assert "lr_act_bases" not in plain.binarization and two.binarization["lr_act_bases"] == 2
    deepest = len(_tiny_config().widths) - 1
    levels = {name: (resolution_level(name, deepest), m.act_bases)
              for name, m in two.named_modules() if isinstance(m, BinaryConv2d)}
    assert {bases for level, bases in levels.values() if level == 0} == {2}
    assert {bases for level, bases in levels.values() if level > 0} == {1}
    assert not any(getattr(m, "act_bases", 1) != 1 for m in plain.modules())
    x_t, lr = torch.randn(1, 48, 16, 16), torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.equal(plain(x_t, lr, 3), two(x_t, lr, 3))
    with pytest.raises(ValueError, match="lr_act_bases"):
        binarize(copy.deepcopy(fp), lr_act_bases=3)


def test_calibrated_activation_shift_moves_the_mean_into_the_bias():
    torch.manual_seed(0)
    conv, linear = nn.Conv2d(5, 7, 3, padding=1), nn.Linear(6, 4)
    x, t = torch.randn(2, 5, 9, 8) + 2.0, torch.randn(3, 6) + 1.0
    bconv = BinaryConv2d.from_conv(conv, act_shift=True)
    blin = BinaryLinear.from_linear(linear, act_shift=True)
    s_conv, s_lin = torch.linspace(-1, 2, 5), torch.linspace(0, 1, 6)
    bconv.calibrate_shift(s_conv)
    blin.calibrate_shift(s_lin)
    # The 1-bit path thresholds at s ...
    xb = x - s_conv.view(1, -1, 1, 1)
    expected = F.conv2d(xb.abs().mean(1, keepdim=True) * torch.where(xb >= 0, 1.0, -1.0),
                        bconv.weight.abs().mean((1, 2, 3), keepdim=True)
                        * torch.where(bconv.weight >= 0, 1.0, -1.0), bconv.bias, 1, 1)
    torch.testing.assert_close(bconv.binary_conv(x), expected)
    # ... and with the FP path (binary_mix 0) the layer is the original one: exactly for the
    # linear, away from the zero-padded border for the conv.
    set_binary_mix(bconv, 0.0)
    set_binary_mix(blin, 0.0)
    with torch.no_grad():
        torch.testing.assert_close(blin(t), linear(t))
        torch.testing.assert_close(bconv(x)[..., 1:-1, 1:-1], conv(x)[..., 1:-1, 1:-1])
    assert "act_shift" in bconv.state_dict() and "act_shift" not in BinaryConv2d(5, 7).state_dict()


def test_calibrate_act_shift_uses_the_fp_layers_channel_means():
    torch.manual_seed(0)
    fp = Denoiser(_tiny_config()).eval()
    model = binarize(copy.deepcopy(fp), act_shift=True)
    assert model.binarization["act_shift"] is True
    x_t, lr = torch.randn(2, 48, 16, 16), torch.rand(2, 3, 16, 16) * 2 - 1
    calibrate_act_shift(model, fp, lambda ref: ref(x_t, lr, 14))
    assert all(not m._forward_hooks for m in fp.modules())
    seen = []
    fp.fuse[0].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    fp(x_t, lr, 14)
    torch.testing.assert_close(model.fuse[0].act_shift, seen[0].mean(dim=(0, 2, 3)))


@pytest.mark.parametrize("cin, cout", [(8, 8), (16, 8), (160, 128), (8, 24), (3, 8), (64, 129)])
@pytest.mark.parametrize("stride", [1, 2])
def test_apply_shortcut_is_the_shortcut_matrix(cin, cout, stride):
    x = torch.randn(2, cin, 9, 7)
    want = F.conv2d(x, shortcut_matrix(cout, cin)[:, :, None, None], stride=stride)
    torch.testing.assert_close(apply_shortcut(x, cout, 1, stride), want)
    tokens = torch.randn(3, 5, cin)
    torch.testing.assert_close(apply_shortcut(tokens, cout, -1),
                               tokens @ shortcut_matrix(cout, cin).T)


def test_shortcut_layers_add_their_input_map_to_the_plain_layer():
    torch.manual_seed(0)
    conv = ShortcutConv2d(6, 4, 3, stride=2, padding=1)
    x = torch.randn(1, 6, 8, 8)
    plain = F.conv2d(x, conv.weight, conv.bias, 2, 1)
    torch.testing.assert_close(conv(x), plain + (x[:, :4, ::2, ::2] + F.pad(
        x[:, 4:, ::2, ::2], (0, 0, 0, 0, 0, 2))) / torch.tensor([2.0, 2, 1, 1]).view(1, 4, 1, 1))
    linear = ShortcutLinear(4, 8)
    t = torch.randn(3, 4)
    torch.testing.assert_close(linear(t), F.linear(t, linear.weight, linear.bias) + t.repeat(1, 2))


def test_shortcut_architecture_wraps_every_binarizable_layer():
    model = Denoiser(dataclasses.replace(_tiny_config(), shortcuts=True))
    names = binarizable_layers(model)
    units = [n for n in names if n.endswith((".res.conv1", ".res.conv2"))]
    assert units and not any(n.endswith(".res.skip") for n in names)  # S(x), no 1x1 conv
    assert all(type(model.get_submodule(n)) is nn.Conv2d for n in units)  # residual units
    others = [model.get_submodule(n) for n in names if n not in units]
    assert others and all(isinstance(m, (ShortcutConv2d, ShortcutLinear)) for m in others)
    assert isinstance(model.conv_in, nn.Conv2d) and not isinstance(model.conv_in, ShortcutConv2d)
    assert "shortcuts" not in ModelConfig().to_dict()  # files without it keep their bytes
    assert ModelConfig.from_dict(model.config.to_dict()) == model.config


@pytest.mark.parametrize("keep_shortcut", [None, False])
def test_a_shortcut_parent_converts_exactly_with_or_without_its_shortcut(keep_shortcut):
    torch.manual_seed(0)
    fp = Denoiser(dataclasses.replace(_tiny_config(), shortcuts=True)).eval()
    with torch.no_grad():
        for p in fp.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model = binarize(copy.deepcopy(fp), shortcut=keep_shortcut, act_shift=True)
    assert model.binarization.get("shortcut", False) is (keep_shortcut is None)
    for name, m in model.named_modules():
        if isinstance(m, (BinaryConv2d, BinaryLinear)):
            unit = name.endswith((".res.conv1", ".res.conv2"))
            assert m.has_shortcut is (keep_shortcut is None and not unit), name
    assert binarize(copy.deepcopy(fp), shortcut=True).binarization == \
        binarize(copy.deepcopy(fp)).binarization
    x_t, lr = torch.randn(1, 48, 19, 21), torch.rand(1, 3, 19, 21) * 2 - 1
    with torch.no_grad():
        set_binary_mix(model, 0.0)  # the 1-bit layers as the FP product of their latent weights
        torch.testing.assert_close(model(x_t, lr, 14), fp(x_t, lr, 14), atol=2e-5, rtol=1e-4)


def test_calibrate_gain_fits_the_1_bit_product_to_the_fp_product():
    torch.manual_seed(0)
    fp = Denoiser(dataclasses.replace(_tiny_config(), shortcuts=True)).eval()
    model = binarize(copy.deepcopy(fp), act_shift=True, gain=True)
    assert model.binarization["gain"] is True
    x_t, lr = torch.randn(2, 48, 16, 16), torch.rand(2, 3, 16, 16) * 2 - 1
    run = lambda ref: ref(x_t, lr, 14)  # noqa: E731
    calibrate_act_shift(model, fp, run)
    calibrate_gain(model, fp, run)
    assert all(not m._forward_hooks for m in fp.modules())
    seen = []
    fp.fuse[0].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    fp(x_t, lr, 14)
    layer = model.fuse[0]
    target, binary = layer.products(seen[0])
    assert not torch.allclose(layer.gain, torch.ones_like(layer.gain))

    dims = (0, 2, 3)  # the per-channel least-squares factor, kept within [0.05, 2]
    fit = (target * binary).sum(dim=dims) / (binary * binary).sum(dim=dims)
    torch.testing.assert_close(layer.gain.detach(), fit.clamp(0.05, 2.0))
    assert fit.min() < 0.9 and ((fit > 0.05) & (fit < 2.0)).any()
    with torch.no_grad():
        torch.testing.assert_close(layer.scaled_binary_weight(),
                                   layer.gain.view(-1, 1, 1, 1) * _binarized(layer.weight))


def _binarized(w):
    return w.abs().mean(dim=(1, 2, 3), keepdim=True) * torch.where(w >= 0, 1.0, -1.0)


def test_a_schedule_without_noise_feeds_the_bicubic_latent_and_ignores_the_seed():
    torch.manual_seed(0)
    model = Denoiser(_tiny_config()).eval()
    schedule = ResShiftSchedule(DiffusionConfig(steps=4, kappa=0.0))
    lr01 = torch.rand(1, 3, 16, 20)
    seen = []
    model.conv_in.register_forward_hook(lambda m, i, o: seen.append(i[0][:, :48]))
    with torch.no_grad():
        out = upscale_tile(model, schedule, lr01, seed=1)
        assert torch.equal(upscale_tile(model, schedule, lr01, seed=2), out)
    torch.testing.assert_close(seen[0][..., :16, :20], to_latent(bicubic_upscale(lr01 * 2 - 1)))


def test_model_config_refuses_attention_that_does_not_split_into_heads():
    """Checked when the config is made, not at the first forward pass: a level of 40 channels
    with head_dim 12 would get 3 heads of 13.33 channels."""
    with pytest.raises(ValueError, match=r"width 40 .* 3 heads of head_dim 12"):
        ModelConfig(widths=(16, 24, 40), attn_levels=(0, 2), head_dim=12)
    with pytest.raises(ValueError, match="attention level 3 is not a level"):
        ModelConfig(widths=(16, 24, 40), attn_levels=(3,))
    config = ModelConfig(widths=(16, 24, 40), attn_levels=(0, 2), head_dim=8)
    assert [config.heads(w) for w in config.widths] == [2, 3, 5]
    assert ModelConfig().heads(160) == 5 and ModelConfig().heads(16) == 1
