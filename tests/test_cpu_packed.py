"""Parity of the ``cpu-packed`` backend's network (``bimacosr_app.runtime``: NumPy and the
native kernels, no torch) with the torch model, its parity oracle.

Every kernel usable on this CPU (``available_kernels()``, the scalar ``reference`` included) is
selected in turn with ``set_kernel``.

Per layer (3x3 stride 1, 3x3 stride 2, 1x1, linear; Cin in 1..129 around the 64-bit word
boundaries, with and without SMB/LRMB, activation thresholds, the fixed shortcut): the
runtime's ``BinaryLayer`` built from the layer's packed tensors (as ``checkpoint.export``
writes them) against the float64 evaluation of the same BinaryConv2d / BinaryLinear (its
float16-stored values rounded first) on the same float32 input. The kernels sum exact
popcounts weighted by alpha, beta in float32; the branch runs as float32 ``up @ (down @ x)``
plus the sparse entries: measured error <= 3e-6 of max |y|; bound ``LAYER_RTOL = 1e-5``.

Whole network, every layout the format allows: the shipped checkpoint
(resources/models/bimacosr-x4.safetensors: the plain parent's student, a shortcut around every
1-bit layer, activation thresholds, gains; kappa = 0, no noise) and random 1-bit models exported
by ``checkpoint.export`` of a shortcut parent (``ModelConfig(shortcuts=True)``: residual-unit
ResBlocks, layer shortcuts in every other layer's branch, thresholds, gains; kappa = 0), of the
layout shipped before (no shortcut, activation thresholds, kappa = 2: position noise) and of a
student with two activation bases, on real photo crops (LR 48x40 and 37x53, so the input is
padded):

* Teacher-forced: every runtime layer receives the input its torch counterpart received
  (captured by forward hooks; the attention linears' windowed tokens put back on the map); all
  glue between the layers runs on the runtime's own values. Measured (AMD EPYC; avx512, avx2,
  reference): output max abs diff <= 7e-7, per layer <= 4.3e-6 of max |y|; bounds
  ``FORCED_ATOL = 5e-6`` and ``FORCED_LAYER_RTOL = 1.5e-5``.
* Free-running on val photos, ``cpu-packed`` against the ``reference`` backend (the backends
  as the app runs them), at scale 4 and at scale 2 (the x4 output area-downscaled as
  jobs/run.py does): the 1-bit network is sensitive to rounding (an activation within
  rounding distance of 0 takes either sign, DESIGN.md "Sign sensitivity"), so the bound is
  the model's own floor, the reference's change under a 1e-6 change of its input (three such
  changes; the largest max, the mean of the means), measured in the test:
  ``max(1/255, 1.5 x floor)`` for the max and ``max(0.05/255, 1.5 x floor)`` for the mean.
  Figures in docs/ARCHITECTURE.md, "Sign sensitivity".
"""

from __future__ import annotations

import copy
import dataclasses

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from bimacosr_app.checkpoint import export_packed, load_packed
from bimacosr_app.checkpoint.export import _binary_layer_tensors
from bimacosr_app.model import (
    BinaryConv2d,
    BinaryLinear,
    Denoiser,
    DiffusionConfig,
    ModelConfig,
    binarize,
)
from bimacosr_app.model.layout import LayerSpec, resolution_level, shortcut_matrix
from bimacosr_app.model.pipeline import upscale_tile
from bimacosr_app.model.unet import SwinBlock

bk = pytest.importorskip(
    "bimacosr_app._bitkernels",
    reason="native kernels not built (pip install -e . needs a C++ compiler)",
)

from random_checkpoints import random_checkpoint  # noqa: E402
from val_photos import photo_lr, val_photos  # noqa: E402

from bimacosr_app.runtime import PackedNetwork  # noqa: E402
from bimacosr_app.runtime.layers import BinaryLayer  # noqa: E402

KERNELS = list(bk.available_kernels())
CHANNELS = [1, 63, 64, 65, 127, 128, 129]
LAYER_RTOL = 1e-5
FORCED_ATOL = 5e-6
FORCED_LAYER_RTOL = 1.5e-5
FLOOR_MAX_ATOL = 1 / 255
FLOOR_MEAN_ATOL = 0.05 / 255
SHIPPED_PHOTOS = ["kde_BytheWater.webp", "lomiri_aitzgorri_by_Aitzol_Berasategi.webp",
                  "gc_erase_spoonbills.webp"]
CROP_SIZES = [(48, 40), (37, 53)]  # LR (h, w)
NUDGES = 3


@pytest.fixture(params=KERNELS)
def kernel(request):
    bk.set_kernel(request.param)
    assert bk.kernel_name() == request.param
    yield request.param
    bk.set_kernel("auto")


def nhwc(x: torch.Tensor) -> np.ndarray:
    """(B,C,H,W) -> C-contiguous (B,H,W,C) float32."""
    return np.ascontiguousarray(x.detach().permute(0, 2, 3, 1).numpy())


# ----------------------------------------------------------------------------------------------
# per layer

LAYER_KINDS = {  # name: (kernel size, stride); None = linear
    "conv3x3": (3, 1),
    "conv3x3_s2": (3, 2),
    "conv1x1": (1, 1),
    "linear": None,
}


def make_layer(kind: str, cin: int, cout: int, branches: bool, seed: int, shift: bool = False,
               shortcut: bool = False, bases: int = 1):
    """A binarized layer with random values, its float16-stored values (SMB, LRMB) rounded as
    the packed file stores them; ``shift``: with a random activation threshold; ``bases``: its
    activation bases (convs)."""
    g = torch.Generator().manual_seed(seed)
    spec = LAYER_KINDS[kind]
    if spec is None:
        fp = nn.Linear(cin, cout)
    else:
        k, s = spec
        fp = nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)
    with torch.no_grad():
        fp.weight.normal_(generator=g)
        fp.bias.normal_(generator=g)
    opts = {"smb": branches, "lrmb": branches, "rank": 8, "act_shift": shift,
            "shortcut": shortcut, "generator": g}
    if spec is None:
        layer = BinaryLinear.from_linear(fp, **opts).eval().requires_grad_(False)
    else:
        layer = BinaryConv2d.from_conv(fp, **opts).eval().requires_grad_(False)
        layer.act_bases = bases
        with torch.no_grad():
            for p in (layer.rprelu.shift_in, layer.rprelu.slope, layer.rprelu.shift_out):
                p.normal_(generator=g)
    with torch.no_grad():
        if shift:
            layer.act_shift.normal_(generator=g)
        for p in (layer.smb_value, layer.lrmb_up, layer.lrmb_down):
            if p is not None:
                p.copy_(p.half().float())
    return layer


def runtime_layer(layer, kind: str) -> BinaryLayer:
    """The runtime's layer from ``layer``'s packed tensors."""
    spec = LAYER_KINDS[kind]
    k, s = (0, 1) if spec is None else spec
    tensors = _binary_layer_tensors("layer", layer)
    return BinaryLayer(LayerSpec("layer", layer.in_features, layer.out_features, k, s),
                       tensors, layer.has_shortcut, getattr(layer, "act_bases", 1))


def layer_input(kind: str, cin: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (2, 7, cin) if LAYER_KINDS[kind] is None else (2, cin, 9, 10)
    x = torch.randn(shape, generator=g)
    x.view(-1)[::7] = 0.0  # sign(0) = +1 on both sides
    return x


def as_map(kind: str, x: torch.Tensor) -> np.ndarray:
    """The runtime's NHWC map of a layer input (a linear's tokens: one row of pixels)."""
    if LAYER_KINDS[kind] is None:
        return np.ascontiguousarray(x.numpy().reshape(1, 1, -1, x.shape[-1]))
    return nhwc(x)


@pytest.mark.parametrize("shift", [False, True], ids=["", "shift"])
@pytest.mark.parametrize("residual", [False, True], ids=["", "residual"])
@pytest.mark.parametrize("branches", [True, False], ids=["branches", "plain"])
@pytest.mark.parametrize("cin", CHANNELS)
@pytest.mark.parametrize("kind", list(LAYER_KINDS))
def test_layer_parity(kernel, kind, cin, branches, residual, shift):
    cout = 130 - cin  # 129..1: word boundaries on the output side too
    layer = make_layer(kind, cin, cout, branches, seed=cin, shift=shift, shortcut=residual)
    x = layer_input(kind, cin, seed=cin + 1)
    with torch.no_grad():
        ref = copy.deepcopy(layer).double()(x.double())
    ref = ref.permute(0, 2, 3, 1) if ref.dim() == 4 else ref.reshape(1, 1, -1, cout)
    res = None
    if residual:  # summed by the layer's epilogue (here with the shortcut in the branch)
        res = np.random.default_rng(cin + 2).standard_normal(ref.shape).astype(np.float32)
        ref = ref + torch.from_numpy(res).double()
    y = runtime_layer(layer, kind)(as_map(kind, x), residual=res)
    assert y.shape == tuple(ref.shape) and y.dtype == np.float32 and y.flags.c_contiguous
    err = np.abs(y - ref.numpy()).max()
    assert err <= LAYER_RTOL * ref.abs().max().item(), (err, ref.abs().max().item())


@pytest.mark.parametrize("shift", [False, True], ids=["", "shift"])
@pytest.mark.parametrize("cin", CHANNELS)
@pytest.mark.parametrize("kind", ["conv3x3", "conv3x3_s2", "conv1x1"])
def test_two_base_layer_parity(kernel, kind, cin, shift):
    """A conv with two activation bases (the second the sign of the first's residual) against
    the training form in float64, with its branches and a residual add."""
    cout = 130 - cin
    layer = make_layer(kind, cin, cout, True, seed=cin, shift=shift, bases=2)
    x = layer_input(kind, cin, seed=cin + 1)
    with torch.no_grad():
        ref = copy.deepcopy(layer).double()(x.double()).permute(0, 2, 3, 1)
        one_base = copy.deepcopy(layer).double()
        one_base.act_bases = 1
        ref_one_base = one_base(x.double()).permute(0, 2, 3, 1)
    res = np.random.default_rng(cin + 2).standard_normal(ref.shape).astype(np.float32)
    ref = ref + torch.from_numpy(res).double()
    y = runtime_layer(layer, kind)(as_map(kind, x), residual=res)
    err = np.abs(y - ref.numpy()).max()
    assert err <= LAYER_RTOL * ref.abs().max().item(), (err, ref.abs().max().item())
    # the second base changes the output, so the test sees a layer that ignores it; except
    # where it cannot: with one channel the residual is 0, and a 1x1 conv with min(Cin, Cout)
    # <= 8 is all LRMB (rank 8), its 1-bit weight 0
    if cin > 1 and (kind != "conv1x1" or min(cin, cout) > 8):
        assert np.abs(y - (ref_one_base.numpy() + res)).max() > 100 * err


@pytest.mark.parametrize("kind, bases", [("linear", 2), ("conv3x3", 3), ("conv3x3", 0)])
def test_runtime_layer_bases_checked(kind, bases):
    layer = make_layer(kind, 8, 8, True, seed=0)
    layer.act_bases = bases  # what runtime_layer hands the runtime
    with pytest.raises(ValueError, match=f"activation bases, a linear 1 \\(got {bases} for a "):
        runtime_layer(layer, kind)


@pytest.mark.parametrize("bases", [1, 2])
@pytest.mark.parametrize("cin", CHANNELS)
def test_layer_upsample(kernel, cin, bases):
    """``upsample=True``: the layer of the nearest-2x-upsampled input, from x itself."""
    layer = runtime_layer(make_layer("conv3x3", cin, 130 - cin, True, seed=cin, shift=True,
                                     bases=bases), "conv3x3")
    x = as_map("conv3x3", layer_input("conv3x3", cin, seed=cin + 1))
    want = layer(np.ascontiguousarray(x.repeat(2, axis=1).repeat(2, axis=2)))
    y = layer(x, upsample=True)
    assert y.shape == want.shape
    assert np.abs(y - want).max() <= LAYER_RTOL * np.abs(want).max()


def test_layer_upsample_and_concat_need_their_layer_kinds():
    s2 = runtime_layer(make_layer("conv3x3_s2", 64, 64, True, seed=0), "conv3x3_s2")
    x = as_map("conv3x3_s2", layer_input("conv3x3_s2", 64, seed=1))
    with pytest.raises(ValueError, match="3x3 stride-1"):
        s2(x, upsample=True)
    with pytest.raises(ValueError, match="1x1 stride-1"):
        s2(x, x2=x)


@pytest.mark.parametrize("bases", [1, 2])
@pytest.mark.parametrize("branches", [True, False], ids=["branches", "plain"])
@pytest.mark.parametrize("c2", CHANNELS)
@pytest.mark.parametrize("c1", [63, 64, 128])
def test_layer_concat(kernel, c1, c2, branches, bases):
    """``x2``: the 1x1 layer of ``concat([x, x2])`` without the concatenation (x's channels a
    multiple of 64; else it concatenates): the binary part bit-identical (the activation
    threshold split over the two halves), the branch equal up to float rounding."""
    layer = runtime_layer(make_layer("conv1x1", c1 + c2, 130 - c2, branches, seed=c1 + c2,
                                     shift=True, bases=bases), "conv1x1")
    x = as_map("conv1x1", layer_input("conv1x1", c1 + c2, seed=c2 + 1))
    want = layer(x)
    y = layer(np.ascontiguousarray(x[..., :c1]), x2=np.ascontiguousarray(x[..., c1:]))
    if branches:
        assert np.abs(y - want).max() <= LAYER_RTOL * np.abs(want).max()
    else:
        np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("bases", [1, 2])
@pytest.mark.parametrize("branches", [True, False], ids=["branches", "plain"])
@pytest.mark.parametrize("silu", [True, False], ids=["silu", ""])
@pytest.mark.parametrize("kind", ["conv3x3", "linear", "conv3x3_s2"])
def test_layer_norm_prologue(kernel, kind, silu, branches, bases):
    """``norm``: the layer of LayerNorm(x) (then SiLU), fused into one pass where the layer
    has a branch, stride 1 and one activation base: bit-identical to normalizing first."""
    from bimacosr_app.runtime.layers import LayerNorm

    if kind == "linear" and bases == 2:
        pytest.skip("linears have one activation base")
    layer = runtime_layer(make_layer(kind, 65, 70, branches, seed=4, shift=True, bases=bases),
                          kind)
    rng = np.random.default_rng(5)
    norm = LayerNorm("n", {"n.weight": rng.standard_normal(65).astype(np.float32),
                           "n.bias": rng.standard_normal(65).astype(np.float32)})
    x = (3 * as_map(kind, layer_input(kind, 65, seed=6)) + 1).astype(np.float32)
    res = None if kind == "conv3x3_s2" else rng.standard_normal(
        layer(x).shape).astype(np.float32)
    np.testing.assert_array_equal(layer(x, residual=res, norm=(norm, silu)),
                                  layer(norm(x, silu=silu), residual=res))


@pytest.mark.parametrize("kind", list(LAYER_KINDS))
def test_layer_prepares_weights_again_after_set_kernel(kind):
    """A layer prepares its weights once, for the kernel active when it is built, and again at
    its first call after ``set_kernel`` switched to another: the same output as a layer built
    under that kernel."""
    layer = make_layer(kind, 65, 33, True, seed=0, shift=True)
    x = as_map(kind, layer_input(kind, 65, seed=1))
    try:
        bk.set_kernel(KERNELS[0])
        packed = runtime_layer(layer, kind)
        for name in [*KERNELS[1:], KERNELS[0]]:
            bk.set_kernel(name)
            y = packed(x)
            prepared = packed.weights
            assert prepared.kernel == name
            np.testing.assert_array_equal(y, runtime_layer(layer, kind)(x))
            packed(x)
            assert packed.weights is prepared  # once per switch, not per call
    finally:
        bk.set_kernel("auto")


# ----------------------------------------------------------------------------------------------
# the pipeline's noise


@pytest.mark.parametrize("seed, top, left", [(0, 0, 0), (3, 64, 128), (-7, 2**31 + 5, 11)])
def test_position_noise_matches_torch(seed, top, left):
    """The same uniforms (bit-identical); NumPy's log and cos against torch's: within 1e-6
    (measured <= 4.8e-7)."""
    from bimacosr_app.model.noise import position_noise as torch_noise
    from bimacosr_app.runtime.noise import position_noise

    got = position_noise(seed, top, left, 37, 53, 48)
    want = torch_noise(seed, top, left, 37, 53, 48)[0].numpy()
    assert got.shape == want.shape == (48, 37, 53) and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-6


# ----------------------------------------------------------------------------------------------
# whole network


def photo_crops() -> list[torch.Tensor]:
    from bimacosr_app.training.data import decode_photo

    photos = val_photos()
    crops = []
    for i, (h, w) in enumerate(CROP_SIZES):
        img = decode_photo(photos[i % len(photos)], max_side=512).float() / 255
        crops.append(img[None, :, 100:100 + h, 120:120 + w].contiguous())  # (1,3,h,w) [0,1]
    return crops


@pytest.fixture(scope="module")
def shipped():
    from bimacosr_app.engine import default_checkpoint_path

    return load_packed(default_checkpoint_path())  # committed


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A shortcut parent's student: residual-unit ResBlocks, layer shortcuts, thresholds and
    gains."""
    checkpoint = random_checkpoint(tmp_path_factory.mktemp("parent") / "p.safetensors", 0,
                                   ModelConfig(shortcuts=True), 0.0, act_shift=True, gain=True)
    assert checkpoint.architecture.shortcuts and checkpoint.binarization["shortcut"]
    return checkpoint


@pytest.fixture(scope="module")
def no_shortcut(tmp_path_factory):
    """The layout shipped before the parent's student (``be4db9c2…``, ``binarize_shift.json``):
    no shortcut, thresholds, kappa = 2 (the input noise drawn from the tile position)."""
    checkpoint = random_checkpoint(tmp_path_factory.mktemp("plain") / "n.safetensors", 2,
                                   ModelConfig(), 2.0, act_shift=True)
    assert not checkpoint.binarization.get("shortcut") and checkpoint.diffusion.kappa > 0
    return checkpoint


@pytest.fixture(scope="module")
def two_bases(tmp_path_factory):
    """A student of the plain parent as ``binarize_parent_bases.json`` makes one: a shortcut
    around every 1-bit layer (the exact start), thresholds, gains, and two activation bases in
    the convs at LR resolution."""
    checkpoint = random_checkpoint(tmp_path_factory.mktemp("bases") / "b.safetensors", 1,
                                   ModelConfig(), 0.0, shortcut=True, act_shift=True,
                                   gain=True, lr_act_bases=2, exact_shortcut=True)
    assert checkpoint.binarization["lr_act_bases"] == 2
    return checkpoint


CHECKPOINTS = ("shipped", "shortcut-parent", "no-shortcut", "two-bases")


@pytest.fixture(scope="module")
def checkpoints(shipped, parent, no_shortcut, two_bases):
    return dict(zip(CHECKPOINTS, (shipped, parent, no_shortcut, two_bases), strict=True))


class Case:
    """A packed checkpoint's torch model and its run on each crop: output and the input and
    output of every binarized layer (as runtime maps), captured once for every kernel."""

    def __init__(self, checkpoint):
        self.checkpoint = checkpoint
        self.model, self.schedule = checkpoint.to_model(), checkpoint.schedule()
        self.crops = photo_crops()
        swins = {name: m for name, m in self.model.named_modules() if isinstance(m, SwinBlock)}
        self.runs = []
        for crop in self.crops:
            ins, outs, maps = {}, {}, {}
            hooks = [m.register_forward_hook(self._capture(name, ins, outs))
                     for name, m in self.model.named_modules()
                     if isinstance(m, (BinaryConv2d, BinaryLinear))]
            hooks += [m.register_forward_pre_hook(self._shape(name, maps))
                      for name, m in swins.items()]
            with torch.inference_mode():
                out = upscale_tile(self.model, self.schedule, crop, seed=3).numpy()
            for h in hooks:
                h.remove()
            self.runs.append((out, {n: self._map(n, x, swins, maps) for n, x in ins.items()},
                              {n: self._map(n, y, swins, maps) for n, y in outs.items()}))

    @staticmethod
    def _capture(name, ins, outs):
        def hook(module, args, output):
            ins[name], outs[name] = args[0].detach().clone(), output.detach().clone()
        return hook

    @staticmethod
    def _shape(name, maps):
        def hook(module, args):
            maps[name] = args[0].shape  # (B, C, H, W) of the block's map
        return hook

    @staticmethod
    def _map(name: str, x: torch.Tensor, swins: dict, maps: dict) -> np.ndarray:
        """A torch layer's input or output as the runtime's NHWC map: the attention linears'
        windowed tokens (B*nW, T, C) put back on the (unshifted) map, the MLP's (B,H,W,C) maps
        as they are, convs' (B,C,H,W) permuted."""
        block = name.rsplit(".attn.", 1)[0] if ".attn.attn." in name else None
        if block is not None:
            swin, (b, _, h, w) = swins[block], maps[block]
            ws, s, c = swin.window, swin.shift, x.shape[-1]
            y = x.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
            y = y.reshape(b, h, w, c)
            return np.ascontiguousarray((torch.roll(y, (s, s), dims=(1, 2)) if s else y).numpy())
        if x.dim() == 4 and ".fc" not in name:
            return nhwc(x)
        return np.ascontiguousarray(x.numpy())

    def forced(self, i: int) -> tuple[np.ndarray, dict]:
        """The runtime's run of crop i with every layer fed its torch input, and each layer's
        own output (without the residual its epilogue summed)."""
        _, ins, _ = self.runs[i]
        network, outs = PackedNetwork(self.checkpoint), {}

        class Forced:
            def __init__(self, layer):
                self.layer = layer

            def __call__(self, x, residual=None, upsample=False, x2=None, norm=None):
                name = self.layer.spec.name  # the torch input: upsampled, concatenated, normed
                y = self.layer(ins[name], residual=residual)
                # a copy: the network normalizes conv1's output in place
                outs[name] = y.copy() if residual is None else y - residual
                return y

        _replace_layers(network, Forced)
        lr = self.crops[i].numpy()
        return network.upscale(lr, seed=3), outs


def _replace_layers(obj, wrap, seen=None) -> None:
    """Wrap every BinaryLayer reachable from the runtime network ``obj`` (attributes and
    lists) in place."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    items = enumerate(obj) if isinstance(obj, list) else list(vars(obj).items())
    for key, value in items:
        if isinstance(value, BinaryLayer):
            if isinstance(obj, list):
                obj[key] = wrap(value)
            else:
                setattr(obj, key, wrap(value))
        elif isinstance(value, list) or type(value).__module__.startswith("bimacosr_app.runtime"):
            _replace_layers(value, wrap, seen)


def layers_of(network: PackedNetwork) -> list[BinaryLayer]:
    found = []

    def keep(layer):
        found.append(layer)
        return layer

    _replace_layers(network, keep)
    return found


@pytest.fixture(scope="module", params=CHECKPOINTS)
def case(request, checkpoints):
    return Case(checkpoints[request.param])


def test_network_holds_every_binarized_layer_with_its_shortcut(shipped, parent, no_shortcut):
    """Every binarized layer once; the fixed shortcut in the sparse part of a layer's branch
    exactly where the format puts it: the shipped student of the plain parent, every layer; a
    shortcut parent, every layer but the ResBlock convs; a model without, none."""
    residual_units = ("res.conv1", "res.conv2")
    for checkpoint, has_shortcut in ((shipped, lambda name: True),
                                     (parent, lambda name: not name.endswith(residual_units)),
                                     (no_shortcut, lambda name: False)):
        found = layers_of(PackedNetwork(checkpoint))
        assert sorted(layer.spec.name for layer in found) == checkpoint.binary_layers
        for layer in found:
            name, t = layer.spec.name, checkpoint.tensors
            has = has_shortcut(name)
            entries = len(t.get(f"{name}.smb.index", ())) + (
                np.count_nonzero(shortcut_matrix(layer.cout, layer.cin)) if has else 0)
            assert len(layer.branch[3]) == entries, name


@pytest.mark.parametrize("crop", range(len(CROP_SIZES)), ids=[f"{h}x{w}" for h, w in CROP_SIZES])
def test_network_parity_teacher_forced(case, kernel, crop):
    ref, _, ref_outs = case.runs[crop]
    out, outs = case.forced(crop)
    assert out.shape == ref.shape and out.dtype == np.float32
    assert np.abs(out - ref).max() <= FORCED_ATOL
    assert outs.keys() == ref_outs.keys() == set(case.checkpoint.binary_layers)
    for name, y in outs.items():
        r = ref_outs[name]
        assert np.abs(y.reshape(r.shape) - r).max() <= FORCED_LAYER_RTOL * np.abs(r).max(), name


def downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """(1,3,4h,4w) -> (H', W', 3) as jobs/run.py makes x2 and x3 from the x4 result."""
    img = hr[0].transpose(1, 2, 0)
    if scale == 4:
        return img
    h, w = img.shape[0] * scale // 4, img.shape[1] * scale // 4
    return cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=cv2.INTER_AREA)


def test_network_gives_two_bases_to_the_lr_resolution_convs(two_bases):
    """lr_act_bases 2: exactly the convs at LR resolution have two activation bases."""
    deepest = len(two_bases.architecture.widths) - 1
    layers = layers_of(PackedNetwork(two_bases))
    two = {layer.spec.name for layer in layers if layer.bases == 2}
    assert two == {layer.spec.name for layer in layers
                   if not layer.spec.linear and resolution_level(layer.spec.name, deepest) == 0}
    assert {"up.0.1.res.conv2", "fuse.0", "upsample.0.conv", "down.0.0.res.conv1"} <= two
    assert len(two) == 10


@pytest.fixture(scope="module")
def reference_runs(checkpoints):
    """(checkpoint name, photo) -> (LR (1,3,96,128), reference x4 output, reference x4 outputs
    of the input changed by 1e-6 in NUDGES ways): the reference backend's own rounding floor,
    once per photo. (The floor's max varies by about 20 % between nudges, its mean by 2 %.)"""
    from bimacosr_app.engine import select_backend

    backends = {name: select_backend("reference", c) for name, c in checkpoints.items()}
    cache = {}

    def get(which, photo):
        if (which, photo) not in cache:
            lr = np.ascontiguousarray(photo_lr(photo, 128, 96).transpose(2, 0, 1)[None])
            nudged = [np.clip(lr + 1e-6 * np.random.default_rng(k).standard_normal(lr.shape),
                              0, 1).astype(np.float32) for k in range(NUDGES)]
            cache[which, photo] = (lr, backends[which].upscale(lr, seed=3),
                                   [backends[which].upscale(x, seed=3) for x in nudged])
        return cache[which, photo]
    return get


# Every vector kernel on every photo and model; the scalar reference kernel, which runs the
# float32 parts in double precision at a fraction of the speed, on one (its layers' parity
# is checked above).
FLOOR_CASES = [(k, which, photo) for k in KERNELS for which in CHECKPOINTS
               for photo in SHIPPED_PHOTOS
               if (k != "reference" or (which, photo) == ("shipped", SHIPPED_PHOTOS[1]))
               and (which not in ("two-bases", "no-shortcut") or photo == SHIPPED_PHOTOS[0])]


@pytest.mark.parametrize("scale", [4, 2])
@pytest.mark.parametrize("name, which, photo", FLOOR_CASES,
                         ids=["-".join((k, w, p.split("_")[0])) for k, w, p in FLOOR_CASES])
def test_agrees_with_reference_on_photos_within_the_floor(checkpoints, reference_runs, name,
                                                          which, photo, scale):
    from bimacosr_app.engine import select_backend

    lr, ref, nudged = reference_runs(which, photo)
    packed = select_backend("cpu-packed", checkpoints[which])
    try:
        bk.set_kernel(name)
        got = packed.upscale(lr, seed=3)
    finally:
        bk.set_kernel("auto")
    assert isinstance(got, np.ndarray) and got.shape == ref.shape
    ref, got = downscale(ref, scale), downscale(got, scale)
    floors = [np.abs(downscale(n, scale) - ref) for n in nudged]
    floor_max, floor_mean = max(f.max() for f in floors), np.mean([f.mean() for f in floors])
    diff = np.abs(got - ref)
    assert diff.max() <= max(FLOOR_MAX_ATOL, 1.5 * floor_max), (diff.max(), floor_max)
    assert diff.mean() <= max(FLOOR_MEAN_ATOL, 1.5 * floor_mean), (diff.mean(), floor_mean)


def test_backend_registered_and_upscales(shipped):
    from bimacosr_app.engine import available_backends, select_backend

    assert "cpu-packed" in available_backends()
    engine = select_backend("cpu-packed", shipped)
    assert engine.device == "cpu" and engine.required_multiple == 64
    lr = np.random.default_rng(0).random((1, 3, 16, 24), dtype=np.float32)
    hr = engine.upscale(lr, top=64, left=128, seed=5)
    assert isinstance(hr, np.ndarray) and hr.shape == (1, 3, 64, 96) and hr.dtype == np.float32
    assert hr.min() >= 0 and hr.max() <= 1
    as_tensor = engine.upscale(torch.from_numpy(lr), top=64, left=128, seed=5)
    assert isinstance(as_tensor, torch.Tensor) and np.array_equal(as_tensor.numpy(), hr)
    with pytest.raises(ValueError, match="runs on the CPU"):
        select_backend("cpu-packed", shipped, device="meta")
    with pytest.raises(ValueError, match=r"\(1,3,h,w\)"):
        engine.upscale(lr[0])


@pytest.mark.parametrize("changes, options", [
    (dict(widths=(16, 24, 36), attn_levels=(0, 2), window=4, head_dim=12, res_blocks=1), {}),
    # flat: every layer at LR resolution, as parent_flat.json's student
    (dict(widths=(16,), attn_levels=(), res_blocks=3), dict(shortcut=True, gain=True)),
], ids=["three-levels", "flat"])
def test_other_architectures_run(tmp_path, changes, options):
    """Any architecture the format allows: three levels, attention at the top level too,
    a window of 4, an odd head size; a single level without attention (parity
    teacher-forced on a random crop)."""
    torch.manual_seed(0)
    model = binarize(Denoiser(dataclasses.replace(ModelConfig(), **changes)), act_shift=True,
                     **options)
    export_packed(model, DiffusionConfig(steps=4), tmp_path / "m.safetensors", {})
    case = Case(load_packed(tmp_path / "m.safetensors"))
    out, _ = case.forced(1)
    assert np.abs(out - case.runs[1][0]).max() <= FORCED_ATOL
