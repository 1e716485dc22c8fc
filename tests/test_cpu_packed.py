"""Parity of the ``cpu-packed`` network (engine/cpu_packed.py) with the torch training form.

Every kernel usable on this CPU (``available_kernels()``, the scalar ``reference`` included) is
selected in turn with ``set_kernel``.

Per layer (3x3 stride 1, 3x3 stride 2, 1x1, linear; Cin in 1..129 around the 64-bit word
boundaries, with and without SMB/LRMB): the packed layer against the float64 evaluation of the
same BinaryConv2d / BinaryLinear on the same float32 input. The kernels sum exact popcounts
weighted by alpha, beta in float32 (the vector kernels in another order than the reference),
the branch is float32: measured error <= 3.5e-6 of max |y| (avx2/avx512 3x3; 3e-7 for the
reference kernel, 1x1 and linear); bound ``LAYER_RTOL = 1e-5`` of max |y|.

Whole network, through ``model.pipeline.upscale_tile`` on real photo crops (LR 48x40 and
37x53), for a random binarized default Denoiser (time path unfolded and folded, with and
without shortcuts and thresholds) and, as the trained model, the bundled packed checkpoint
(resources/models/bimacosr-x4.safetensors, session 4's model) as the ``reference`` and
``cpu-packed`` backends load it. (A case of the git-ignored runs/session1 training run, skipped
wherever that run was absent, is gone: the bundled model is a trained model of the same
architecture, and the random cases cover the unfolded training form.)

* Teacher-forced: every packed layer receives the input its torch counterpart received (a
  forward pre-hook); all glue between the layers runs on the packed model's own values.
  Measured (Xeon; avx512, avx2, reference): max abs diff on the [0,1] output <= 1.3e-6 and,
  per layer, <= 3.3e-6 of max |y|; bounds ``FORCED_ATOL = 5e-6`` and ``FORCED_LAYER_RTOL = 1.5e-5``.
* Free-running (each model on its own activations): the binarized network is chaotic. The
  packed and torch float32 summation orders differ in the last bits, and a single activation
  within ~1e-8 of 0 that lands on the other side of sign() changes that layer's output by
  ~1e-2, which flips further signs downstream, and the attention windows (64 LR pixels wide at
  the lowest level) spread it over the whole tile. Measured max abs diff: ~1e-6 when no sign
  flips, up to 0.73 (mean 0.11) when one does; torch float32 against torch float64 of the same
  trained model shows the same (0.27 max, 0.05 mean on one of six crops). So no tight bound
  holds; this test only bounds the mean abs diff by ``FREE_MEAN_ATOL = 0.25`` (2x the worst
  measured) and checks range and finiteness. The teacher-forced test is the exact check.
* The shipped model, on 128x96 LR crops of three val photos, ``cpu-packed`` against
  ``reference`` (the backends as the app runs them): session 2's model (8bda046d) max
  1.84/255, mean 0.122/255; session 3's (0a151411, full-precision shortcut) max 0.60/255,
  mean 0.009/255; session 4's (760e5863, activation thresholds) is sensitive again: its
  floor (the reference's own change under a 1e-6 input change) is max 3.6-17.7/255, mean
  0.35-0.73/255 per photo, and every kernel lands at it (max 3.0-17.6/255, mean
  0.24-0.73/255). Bound: ``max(SHIPPED_MAX_ATOL, 1.5 x floor)`` for the max and
  ``max(SHIPPED_MEAN_ATOL, 1.5 x floor)`` for the mean, the floor measured in the test; a
  chaotic model (session 1's: mean 12/255) fails them by far, a calm one meets 1/255.
"""

from __future__ import annotations

import copy

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
    binarizable_layers,
    binarize,
    fold_time,
)
from bimacosr_app.model.pipeline import upscale_tile
from bimacosr_app.model.unet import LayerNorm2d, ResBlock, Upsample

bk = pytest.importorskip(
    "bimacosr_app._bitkernels",
    reason="native kernels not built (pip install -e . needs a C++ compiler)",
)

from val_photos import photo_lr, val_photos  # noqa: E402

from bimacosr_app.engine.cpu_packed import PackedConv2d, PackedLinear, pack_model  # noqa: E402

KERNELS = list(bk.available_kernels())
CHANNELS = [1, 63, 64, 65, 127, 128, 129]
LAYER_RTOL = 1e-5
FORCED_ATOL = 5e-6
FORCED_LAYER_RTOL = 1.5e-5
FREE_MEAN_ATOL = 0.25
SHIPPED_MAX_ATOL = 1 / 255
SHIPPED_MEAN_ATOL = 0.05 / 255
SHIPPED_PHOTOS = ["kde_BytheWater.webp", "lomiri_aitzgorri_by_Aitzol_Berasategi.webp",
                  "gc_erase_spoonbills.webp"]
CROP_SIZES = [(48, 40), (37, 53)]  # LR (h, w)


@pytest.fixture(params=KERNELS)
def kernel(request):
    bk.set_kernel(request.param)
    assert bk.kernel_name() == request.param
    yield request.param
    bk.set_kernel("auto")


# ----------------------------------------------------------------------------------------------
# per layer

LAYER_KINDS = {  # name: (kernel size, stride); None = linear
    "conv3x3": (3, 1),
    "conv3x3_s2": (3, 2),
    "conv1x1": (1, 1),
    "linear": None,
}


def make_layer(kind: str, cin: int, cout: int, branches: bool, seed: int, shift: bool = False):
    """A binarized layer with random values; ``shift``: with a random activation threshold."""
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
    opts = {"smb": branches, "lrmb": branches, "rank": 8, "act_shift": shift, "generator": g}
    if spec is None:
        layer = BinaryLinear.from_linear(fp, **opts).eval().requires_grad_(False)
    else:
        layer = BinaryConv2d.from_conv(fp, **opts).eval().requires_grad_(False)
        with torch.no_grad():
            for p in (layer.rprelu.shift_in, layer.rprelu.slope, layer.rprelu.shift_out):
                p.normal_(generator=g)
    if shift:
        with torch.no_grad():
            layer.act_shift.normal_(generator=g)
    return layer


def layer_input(kind: str, cin: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (2, 7, cin) if LAYER_KINDS[kind] is None else (2, cin, 9, 10)
    x = torch.randn(shape, generator=g)
    x.view(-1)[::7] = 0.0  # sign(0) = +1 on both sides
    return x


@pytest.mark.parametrize("shift", [False, True], ids=["", "shift"])
@pytest.mark.parametrize("residual", [False, True], ids=["", "residual"])
@pytest.mark.parametrize("branches", [True, False], ids=["branches", "plain"])
@pytest.mark.parametrize("cin", CHANNELS)
@pytest.mark.parametrize("kind", list(LAYER_KINDS))
def test_layer_parity(kernel, kind, cin, branches, residual, shift):
    cout = 130 - cin  # 129..1: word boundaries on the output side too
    layer = make_layer(kind, cin, cout, branches, seed=cin, shift=shift)
    x = layer_input(kind, cin, seed=cin + 1)
    with torch.no_grad():
        ref = copy.deepcopy(layer).double()(x.double())
    res = None
    if residual:  # summed by the layer's epilogue: (..., Cout) like the output
        res = torch.randn(ref.shape, generator=torch.Generator().manual_seed(cin + 2))
        ref = ref + res.double()
        if res.dim() == 4:
            res = res.contiguous(memory_format=torch.channels_last)
    packed = PackedConv2d(layer) if isinstance(layer, BinaryConv2d) else PackedLinear(layer)
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        y = packed(x, residual=res)
    assert y.shape == ref.shape and y.dtype == torch.float32
    if y.dim() == 4:  # NHWC memory, returned without a copy
        assert y.is_contiguous(memory_format=torch.channels_last)
    err = (y.double() - ref).abs().max().item()
    assert err <= LAYER_RTOL * ref.abs().max().item(), (err, ref.abs().max().item())


@pytest.mark.parametrize("cin", CHANNELS)
def test_layer_upsample(kernel, cin):
    """``upsample=True``: the layer of the nearest-2x-upsampled input, from x itself."""
    layer = make_layer("conv3x3", cin, 130 - cin, True, seed=cin, shift=True)
    x = layer_input("conv3x3", cin, seed=cin + 1).contiguous(memory_format=torch.channels_last)
    packed = PackedConv2d(layer)
    with torch.inference_mode():
        want = packed(F.interpolate(x, scale_factor=2, mode="nearest"))
        y = packed(x, upsample=True)
    assert y.shape == want.shape and y.is_contiguous(memory_format=torch.channels_last)
    err = (y - want).abs().max().item()
    assert err <= LAYER_RTOL * want.abs().max().item(), err


def test_layer_upsample_needs_3x3_stride_1():
    packed = PackedConv2d(make_layer("conv3x3_s2", 64, 64, True, seed=0))
    with pytest.raises(ValueError, match="3x3 stride-1"), torch.inference_mode():
        packed(layer_input("conv3x3_s2", 64, seed=1), upsample=True)


@pytest.mark.parametrize("branches", [True, False], ids=["branches", "plain"])
@pytest.mark.parametrize("c2", CHANNELS)
@pytest.mark.parametrize("c1", [63, 64, 128])
def test_layer_concat(kernel, c1, c2, branches):
    """``x2``: the 1x1 layer of ``cat([x, x2])`` without the concatenation (x's channels a
    multiple of 64; else it concatenates): the binary part bit-identical (the activation
    threshold split over the two halves), the branch (two products summed) equal up to float
    rounding."""
    layer = make_layer("conv1x1", c1 + c2, 130 - c2, branches, seed=c1 + c2, shift=True)
    x = layer_input("conv1x1", c1 + c2, seed=c2 + 1).contiguous(memory_format=torch.channels_last)
    xa, xb = (t.contiguous(memory_format=torch.channels_last) for t in (x[:, :c1], x[:, c1:]))
    packed = PackedConv2d(layer)
    with torch.inference_mode():
        want = packed(x)
        y = packed(xa, x2=xb)
    assert y.shape == want.shape and y.is_contiguous(memory_format=torch.channels_last)
    if branches:
        err = (y - want).abs().max().item()
        assert err <= LAYER_RTOL * want.abs().max().item(), err
    else:
        assert torch.equal(y, want)


def test_layer_concat_needs_1x1_stride_1():
    packed = PackedConv2d(make_layer("conv3x3", 128, 64, True, seed=0))
    x = layer_input("conv3x3", 64, seed=1).contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="1x1 stride-1"), torch.inference_mode():
        packed(x, x2=x)


def test_layer_accepts_nchw_contiguous(kernel):
    layer = make_layer("conv3x3_s2", 65, 33, True, seed=0)
    x = layer_input("conv3x3_s2", 65, seed=1)  # plain NCHW: the layer copies to NHWC
    packed = PackedConv2d(layer)
    with torch.inference_mode():
        a = packed(x)
        b = packed(x.contiguous(memory_format=torch.channels_last))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kind", list(LAYER_KINDS))
def test_layer_prepares_weights_again_after_set_kernel(kind):
    """A layer prepares its weights once, for the kernel active when it is built, and again at
    its first forward after ``set_kernel`` switched to another: the same output as a layer
    built under that kernel."""
    layer = make_layer(kind, 65, 33, True, seed=0, shift=True)
    x = layer_input(kind, 65, seed=1)
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    packed_layer = PackedConv2d if isinstance(layer, BinaryConv2d) else PackedLinear
    try:
        bk.set_kernel(KERNELS[0])
        packed = packed_layer(layer)
        for name in [*KERNELS[1:], KERNELS[0]]:
            bk.set_kernel(name)
            with torch.inference_mode():
                y = packed(x)
                want = packed_layer(layer)(x)
                prepared = packed.weights
                assert prepared.kernel == name
                assert torch.equal(y, want)
                packed(x)
                assert packed.weights is prepared  # once per switch, not per forward
    finally:
        bk.set_kernel("auto")


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


def random_model(folded: bool, schedule: ResShiftSchedule, shortcut: bool = False,
                 act_shift: bool = False, parent_shortcuts: bool = False) -> nn.Module:
    """A random binarized default Denoiser; ``parent_shortcuts``: converted from a shortcut
    parent (residual-unit ResBlocks, shortcut layers) with thresholds and gains."""
    torch.manual_seed(0)
    if parent_shortcuts:
        model = binarize(Denoiser(ModelConfig(shortcuts=True)), act_shift=True, gain=True)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (BinaryConv2d, BinaryLinear)):
                    m.gain.uniform_(0.5, 1.5)
    else:
        model = binarize(Denoiser(), shortcut=shortcut, act_shift=act_shift)
    model.eval().requires_grad_(False)
    if act_shift:  # thresholds of the size calibration gives (|s| ~ 0.1-0.5)
        for m in model.modules():
            if isinstance(m, (BinaryConv2d, BinaryLinear)):
                m.act_shift.normal_(0.0, 0.3)
    return fold_time(model, schedule.steps - 1) if folded else model


class Case:
    """A torch model, its packed copy, and the torch run of each crop (output and the
    input/output of every binarized layer, captured once and reused for every kernel)."""

    def __init__(self, model: nn.Module, schedule: ResShiftSchedule,
                 packed: nn.Module | None = None):
        self.model, self.schedule = model, schedule
        self.packed = pack_model(copy.deepcopy(model)) if packed is None else packed
        self.crops = photo_crops()
        self.runs = []
        for crop in self.crops:
            ins, outs = {}, {}
            hooks = [m.register_forward_hook(self._capture(name, ins, outs))
                     for name, m in model.named_modules()
                     if isinstance(m, (BinaryConv2d, BinaryLinear))]
            with torch.inference_mode():
                out = upscale_tile(model, schedule, crop, seed=3)
            for h in hooks:
                h.remove()
            self.runs.append((out, ins, outs))

    @staticmethod
    def _capture(name, ins, outs):
        def hook(module, args, output):
            ins[name], outs[name] = args[0], output
        return hook

    def forced(self, i: int) -> tuple[torch.Tensor, dict, dict]:
        """Packed run of crop i with every packed layer fed its torch input."""
        _, ins, _ = self.runs[i]
        outs = {}

        def pre(name):  # the torch input, as it is (upsampled, a fuse's concatenated)
            def hook(module, args, kwargs):
                x = ins[name]
                x = x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
                return (x,), {k: v for k, v in kwargs.items() if k not in ("upsample", "x2")}
            return hook

        # The layer's own output: without the residual its epilogue summed, and a copy (the
        # packed ResBlock normalizes conv1's output in place).
        def post(name):
            def hook(module, args, kwargs, output):
                residual = kwargs.get("residual")
                outs[name] = output.clone() if residual is None else output - residual
            return hook

        hooks = []
        for name, m in self.packed.named_modules():
            if isinstance(m, (PackedConv2d, PackedLinear)):
                hooks.append(m.register_forward_pre_hook(pre(name), with_kwargs=True))
                hooks.append(m.register_forward_hook(post(name), with_kwargs=True))
        try:
            with torch.inference_mode():
                out = upscale_tile(self.packed, self.schedule, self.crops[i], seed=3)
        finally:
            for h in hooks:
                h.remove()
        return out, ins, outs


def backend_case() -> Case:
    """The bundled packed checkpoint: the ``reference`` backend's model against the
    ``cpu-packed`` backend's."""
    from bimacosr_app.engine.backends import default_checkpoint_path, select_backend

    reference = select_backend("reference", default_checkpoint_path())  # committed
    packed = select_backend("cpu-packed", reference.checkpoint)
    return Case(reference.model, reference.schedule, packed.model)


@pytest.fixture(scope="module",
                params=["random", "random-folded", "random-shortcut", "random-act-shift",
                        "random-shortcut-parent", "backend"])
def case(request):
    if request.param == "backend":
        return backend_case()
    parent = request.param == "random-shortcut-parent"
    schedule = ResShiftSchedule(DiffusionConfig(steps=4, kappa=0.0 if parent else 2.0))
    model = random_model(request.param == "random-folded", schedule,
                         shortcut=request.param == "random-shortcut",
                         act_shift=request.param == "random-act-shift" or parent,
                         parent_shortcuts=parent)
    return Case(model, schedule)


def test_pack_model_converts_every_binary_layer():
    schedule = ResShiftSchedule(DiffusionConfig(steps=4))
    model = random_model(False, schedule)
    n = len(binarizable_layers(Denoiser()))
    packed = pack_model(model)
    kinds = [type(m) for m in packed.modules()]
    assert BinaryConv2d not in kinds and BinaryLinear not in kinds
    assert kinds.count(PackedConv2d) + kinds.count(PackedLinear) == n
    # ResBlocks, Upsamples and LayerNorms keep their modules but run on the native kernels
    assert ResBlock not in kinds and LayerNorm2d not in kinds and nn.LayerNorm not in kinds
    assert Upsample not in kinds
    assert Denoiser not in kinds  # the decoder's fuse takes (x, skip) without concatenating


@pytest.mark.parametrize("crop", range(len(CROP_SIZES)), ids=[f"{h}x{w}" for h, w in CROP_SIZES])
def test_network_parity_teacher_forced(case, kernel, crop):
    ref, _, ref_outs = case.runs[crop]
    out, _, outs = case.forced(crop)
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() <= FORCED_ATOL
    assert outs.keys() == ref_outs.keys()
    for name, y in outs.items():
        r = ref_outs[name]
        assert (y - r).abs().max().item() <= FORCED_LAYER_RTOL * r.abs().max().item(), name


@pytest.mark.parametrize("crop", range(len(CROP_SIZES)), ids=[f"{h}x{w}" for h, w in CROP_SIZES])
def test_network_free_running(case, kernel, crop):
    ref = case.runs[crop][0]
    with torch.inference_mode():
        out = upscale_tile(case.packed, case.schedule, case.crops[crop], seed=3)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1
    assert (out - ref).abs().mean().item() <= FREE_MEAN_ATOL


@pytest.fixture(scope="module")
def shipped_backends():
    from bimacosr_app.engine.backends import default_checkpoint_path, select_backend

    reference = select_backend("reference", default_checkpoint_path())  # committed
    return reference, select_backend("cpu-packed", reference.checkpoint)


@pytest.fixture(scope="module")
def shipped_floor(shipped_backends):
    """photo -> (LR crop, reference output, |reference output change| under a 1e-6 input
    change): the reference's own rounding floor, computed once per photo."""
    reference, _ = shipped_backends
    cache = {}

    def get(photo):
        if photo not in cache:
            lr = torch.from_numpy(photo_lr(photo, 128, 96)).permute(2, 0, 1)[None]  # (1,3,96,128)
            nudge = 1e-6 * torch.randn(lr.shape, generator=torch.Generator().manual_seed(0))
            with torch.inference_mode():
                ref = reference.upscale(lr)
                floor = (reference.upscale((lr + nudge).clamp(0, 1)) - ref).abs()
            cache[photo] = lr, ref, floor
        return cache[photo]
    return get


@pytest.mark.parametrize("photo", SHIPPED_PHOTOS)
def test_shipped_model_agrees_with_reference_on_photos(shipped_backends, shipped_floor, kernel,
                                                       photo):
    _, packed = shipped_backends
    lr, ref, floor = shipped_floor(photo)
    with torch.inference_mode():
        diff = (packed.upscale(lr) - ref).abs()
    assert diff.max().item() <= max(SHIPPED_MAX_ATOL, 1.5 * floor.max().item())
    assert diff.mean().item() <= max(SHIPPED_MEAN_ATOL, 1.5 * floor.mean().item())


def test_packed_model_deepcopies():
    schedule = ResShiftSchedule(DiffusionConfig(steps=4))
    model = pack_model(random_model(True, schedule))
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(upscale_tile(model, schedule, lr),
                           upscale_tile(copy.deepcopy(model), schedule, lr))


def test_threads_follow_torch():
    schedule = ResShiftSchedule(DiffusionConfig(steps=4))
    model = pack_model(random_model(True, schedule))
    before_torch, before_bk = torch.get_num_threads(), bk.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.inference_mode():
            upscale_tile(model, schedule, torch.rand(1, 3, 16, 16))
        assert bk.get_num_threads() == 1
    finally:
        torch.set_num_threads(before_torch)
        bk.set_num_threads(before_bk)


def test_backend_registered_and_upscales():
    from bimacosr_app.engine.backends import (
        available_backends,
        default_checkpoint_path,
        select_backend,
    )

    assert "cpu-packed" in available_backends()
    engine = select_backend("cpu-packed", default_checkpoint_path())  # committed
    hr = engine.upscale(torch.rand(1, 3, 16, 24), top=64, left=128, seed=5)
    assert hr.shape == (1, 3, 64, 96) and hr.dtype == torch.float32
    assert hr.min() >= 0 and hr.max() <= 1
    with pytest.raises(ValueError):
        select_backend("cpu-packed", engine.checkpoint, device="meta")
