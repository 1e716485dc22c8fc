"""Packed checkpoint: time folding, exact round trip, byte-exact golden file, rejection of bad
files, and export fidelity (training form vs the reloaded deploy form) on a real photo.

Regenerate the golden file after a deliberate format change (and bump FORMAT_VERSION):
``PYTHONPATH=. python tests/test_checkpoint.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import torch
import torch.nn.functional as F
from val_photos import val_photos

from bimacosr_app.checkpoint import (
    CheckpointError,
    export_fp32,
    export_packed,
    fp32_parameter_count,
    load_packed,
)
from bimacosr_app.checkpoint.bitpack import unpack_signs
from bimacosr_app.checkpoint.format import content_sha256
from bimacosr_app.model import (
    BinaryConv2d,
    BinaryLinear,
    Denoiser,
    DiffusionConfig,
    ModelConfig,
    ResShiftSchedule,
    binarize,
    fold_time,
    upscale_tile,
)
from bimacosr_app.model.binary import binarize_weight
from bimacosr_app.training.data import decode_photo

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "tiny_packed.safetensors"
SHIPPED = ROOT / "resources" / "models" / "bimacosr-x4.safetensors"
TINY = ModelConfig(widths=(8, 16, 16, 16), res_blocks=1, time_dim=16, head_dim=8)
DIFFUSION = DiffusionConfig(steps=4)
PROVENANCE = {"source_commit": "0" * 40, "training_data": "synthetic", "steps": 0,
              "validation": None}


def golden_model() -> Denoiser:
    """A tiny binarized model whose every value comes from NumPy's PCG64 and whose export
    uses only exactly rounded float operations, so its bytes are the same on every machine:
    latent binary weights are multiples of 1/64 (beta's sums are exact in any order, and
    exact zeros exercise sign(0) = +1); ``film`` weights are zero, so the folded FiLM terms
    are the film biases exactly."""
    rng = np.random.default_rng(20261125)
    model = binarize(Denoiser(TINY), svd_init=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("film.weight"):
                v = np.zeros(p.shape)
            elif isinstance(model.get_submodule(name.rpartition(".")[0]),
                            (BinaryConv2d, BinaryLinear)) and name.endswith(".weight"):
                v = rng.integers(-8, 9, p.shape) / 64
            else:
                v = rng.normal(0.0, 0.3, p.shape)
            p.copy_(torch.from_numpy(v.astype(np.float32)))
        for module in model.modules():
            if isinstance(module, (BinaryConv2d, BinaryLinear)):
                n, size = module.smb_index.numel(), module.in_features * module.out_features
                module.smb_index.copy_(torch.from_numpy(rng.choice(size, n, replace=False)))
    return model.eval()


def random_model(config: ModelConfig = TINY, seed: int = 0, shortcut: bool | None = None,
                 act_shift: bool = False, gain: bool = False) -> Denoiser:
    """A binarized model with every parameter randomly perturbed, as if trained (activation
    thresholds and gains too, when on)."""
    torch.manual_seed(seed)
    model = binarize(Denoiser(config), seed=seed, shortcut=shortcut, act_shift=act_shift,
                     gain=gain)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def photo_crop(h: int = 40, w: int = 48) -> torch.Tensor:
    """(1,3,h,w) in [0,1]: the centre of the first validation photo, downscaled to 160 px."""
    img = decode_photo(val_photos()[0], max_side=160).float() / 255
    top, left = (img.shape[1] - h) // 2, (img.shape[2] - w) // 2
    return img[None, :, top:top + h, left:left + w].contiguous()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = random_model()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    digest = export_packed(model, DIFFUSION, path, PROVENANCE)
    return model, path, digest


# --- time folding ---------------------------------------------------------------------------

def test_fold_time_keeps_the_output_and_removes_the_time_path():
    # A full-precision model: folding is algebra on norm2 and must agree to float32 rounding.
    # (A binarized model agrees the same way layer by layer, but a rounding-size change can
    # flip the sign of an activation at ~0 and, through the network, the whole output: see
    # the fidelity tests below.)
    torch.manual_seed(1)
    model = Denoiser(TINY).eval()
    with torch.no_grad():  # non-trivial FiLM and norms
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x, lr = torch.randn(1, 48, 24, 40), torch.rand(1, 3, 24, 40) * 2 - 1
    folded = fold_time(copy.deepcopy(model), 3)
    with torch.no_grad():
        ref, out = model(x, lr, 3), folded(x, lr, 3)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert folded.time_embed is None and folded.folded_t == 3
    assert not any("film" in k or "time_embed" in k for k in folded.state_dict())
    with pytest.raises(ValueError, match="folded at t=3"):
        folded(x, lr, 2)
    with pytest.raises(ValueError, match="already folded"):
        fold_time(folded, 3)


# --- round trip and golden ------------------------------------------------------------------

def test_round_trip_is_exact(tiny):
    model, path, digest = tiny
    ckpt = load_packed(path)
    assert ckpt.content_sha256 == digest
    assert ckpt.architecture == model.config
    assert ckpt.diffusion == DIFFUSION and ckpt.time_folded_at == DIFFUSION.steps - 1
    assert ckpt.provenance == PROVENANCE and ckpt.binarization == model.binarization
    assert ckpt.format_version == "2" and ckpt.file_size == path.stat().st_size

    deploy = fold_time(copy.deepcopy(model), 3)
    state = deploy.state_dict()
    binary = {n: m for n, m in deploy.named_modules() if isinstance(m, (BinaryConv2d,
                                                                        BinaryLinear))}
    assert ckpt.binary_layers == sorted(binary)
    for name, layer in binary.items():
        w = layer.weight.detach()
        signs = unpack_signs(ckpt.tensors[f"{name}.bits"], layer.in_features)
        if w.dim() == 4:
            signs = signs.transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(signs, np.where(w.numpy() >= 0, 1.0, -1.0))
        np.testing.assert_array_equal(ckpt.tensors[f"{name}.beta"],
                                      w.abs().mean(dim=tuple(range(1, w.dim()))).numpy())
        np.testing.assert_array_equal(ckpt.tensors[f"{name}.smb.index"],
                                      layer.smb_index.numpy().astype(np.int32))
        for packed, key in (("smb.value", "smb_value"), ("lrmb.down", "lrmb_down"),
                            ("lrmb.up", "lrmb_up")):
            np.testing.assert_array_equal(ckpt.tensors[f"{name}.{packed}"],
                                          state[f"{name}.{key}"].numpy().astype(np.float16))
    for key in ("conv_in.weight", "conv_in.bias", "down.0.0.res.norm2.weight"):
        dtype = np.float16 if state[key].dim() > 1 else np.float32
        np.testing.assert_array_equal(ckpt.tensors[key], state[key].numpy().astype(dtype))

    rebuilt = ckpt.to_model()
    assert rebuilt.folded_t == 3 and not rebuilt.training
    for name, layer in binary.items():
        other = rebuilt.get_submodule(name)
        assert torch.equal(other.scaled_binary_weight(), binarize_weight(layer.weight))
        assert torch.equal(other.smb_index, layer.smb_index)


def test_export_is_deterministic_and_matches_the_golden_file(tmp_path):
    path = tmp_path / "tiny.safetensors"
    export_packed(golden_model(), DIFFUSION, path, PROVENANCE)
    assert path.read_bytes() == GOLDEN.read_bytes(), (
        "export no longer reproduces tests/golden/tiny_packed.safetensors byte for byte")
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.safetensors"]  # no temp file left
    ckpt = load_packed(GOLDEN)
    # sign(0) = +1: the golden latent weights contain exact zeros, which must pack as bit 0
    w = golden_model().get_submodule("down.0.0.res.conv1").weight.detach()
    assert (w == 0).any()
    zero_bits = unpack_signs(ckpt.tensors["down.0.0.res.conv1.bits"], 8)[
        (w.permute(0, 2, 3, 1) == 0).numpy()]
    assert (zero_bits == 1.0).all()


def test_export_needs_a_binarized_model(tmp_path):
    with pytest.raises(ValueError, match="binarized"):
        export_packed(Denoiser(TINY), DIFFUSION, tmp_path / "x.safetensors", PROVENANCE)


def test_two_activation_bases_round_trip(tmp_path):
    """lr_act_bases 2 is written to the binarization metadata (and only then), and the reader's
    model gives two bases to exactly the convs at LR resolution; a model whose layers' bases
    disagree with the metadata is refused, nothing written."""
    path = tmp_path / "two.safetensors"
    model = binarize(Denoiser(TINY), lr_act_bases=2)
    export_packed(model, DIFFUSION, path, PROVENANCE)
    ckpt = load_packed(path)
    assert ckpt.binarization["lr_act_bases"] == 2
    bases = {n: m.act_bases for n, m in ckpt.to_model().named_modules()
             if isinstance(m, BinaryConv2d)}
    assert bases == {n: m.act_bases for n, m in model.named_modules()
                     if isinstance(m, BinaryConv2d)}
    assert bases["up.0.0.res.conv2"] == bases["fuse.0"] == 2 and bases["up.1.0.res.conv2"] == 1
    one = tmp_path / "one.safetensors"
    export_packed(binarize(Denoiser(TINY)), DIFFUSION, one, PROVENANCE)
    assert "lr_act_bases" not in load_packed(one).binarization

    model.get_submodule("up.1.0.res.conv2").act_bases = 2
    out = tmp_path / "x.safetensors"
    with pytest.raises(ValueError, match=r"up\.1\.0\.res\.conv2 has 2 activation bases"):
        export_packed(model, DIFFUSION, out, PROVENANCE)
    assert not out.exists()


def test_fp32_export_of_thresholded_layers_is_the_fp_network(tmp_path):
    """With activation thresholds the FP32 file's bias is b - W_b s: each FP layer of an
    unshifted input equals conv(x - s, W_b) + b + branches away from the zero-padded border."""
    model = fold_time(random_model(act_shift=True), 3)
    out = tmp_path / "fp32.safetensors"
    export_fp32(model, out)
    tensors = safetensors.numpy.load_file(out)
    layer = model.get_submodule("down.0.0.res.conv1")
    x = torch.randn(1, layer.in_features, 9, 11)
    with torch.no_grad():
        want = F.conv2d(x - layer.act_shift.view(1, -1, 1, 1), layer.weight, layer.bias,
                        padding=1) + layer.branches(x)
        got = F.conv2d(x, torch.from_numpy(tensors["down.0.0.res.conv1.weight"]),
                       torch.from_numpy(tensors["down.0.0.res.conv1.bias"]), padding=1)
    torch.testing.assert_close(got[..., 1:-1, 1:-1], want[..., 1:-1, 1:-1], atol=1e-5, rtol=1e-5)


def test_fp32_export_holds_every_parameter_in_float32(tiny, tmp_path):
    _, path, _ = tiny
    ckpt = load_packed(path)
    out = tmp_path / "fp32.safetensors"
    export_fp32(ckpt.to_model(), out)
    tensors = safetensors.numpy.load_file(out)
    assert all(a.dtype == np.float32 for a in tensors.values())
    assert sum(a.size for a in tensors.values()) == fp32_parameter_count(TINY)
    fp = fold_time(Denoiser(TINY), 3).state_dict()
    assert {k: tuple(v.shape) for k, v in fp.items()} == {k: a.shape for k, a in tensors.items()}


# --- rejection ------------------------------------------------------------------------------

def _rewrite(src: Path, dst: Path, edit=None, metadata=None, rehash=False) -> Path:
    """Copy a checkpoint through the safetensors library, editing tensors or metadata (a value
    None removes the key); with ``rehash`` the content hash is recomputed for the edited file,
    so that only the edit can make it fail."""
    from safetensors import safe_open
    with safe_open(str(src), framework="np") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    if edit:
        edit(tensors)
    meta.update(metadata or {})
    meta = {k: v for k, v in meta.items() if v is not None}
    if rehash:
        meta["content_sha256"] = content_sha256(
            tensors, None if meta.get("format_version") == "1" else meta)
    safetensors.numpy.save_file(tensors, str(dst), metadata=meta)
    return dst


def _replace(name, value):
    def edit(tensors):
        tensors[name] = value
    return edit


def test_rejects_garbage_and_truncated_files(tiny, tmp_path):
    _, path, _ = tiny
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_packed(garbage)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_packed(truncated)
    with pytest.raises(CheckpointError, match="No such file"):
        load_packed(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("case, edit, message", [
    ("wrong shape", _replace("down.0.0.res.conv1.bits", np.zeros((8, 3, 3, 2), np.uint64)),
     r"down\.0\.0\.res\.conv1\.bits has shape \[8, 3, 3, 2\], expected \[8, 3, 3, 1\]"),
    ("wrong dtype", _replace("down.0.0.res.conv1.beta", np.ones(8, np.float16)),
     r"down\.0\.0\.res\.conv1\.beta has dtype float16, expected float32"),
    ("missing", lambda t: t.pop("conv_out.weight"), r"missing tensors: conv_out\.weight"),
    ("unexpected", _replace("extra.weight", np.ones(3, np.float32)),
     r"unexpected tensors: extra\.weight"),
])
def test_rejects_bad_layouts(tiny, tmp_path, case, edit, message):
    _, path, _ = tiny
    with pytest.raises(CheckpointError, match=message):
        load_packed(_rewrite(path, tmp_path / "bad.safetensors", edit=edit))


@pytest.mark.parametrize("metadata, message", [
    ({"format_version": "3"}, "unsupported format_version '3'"),
    ({"format": "something-else"}, "not a bimacosr-packed checkpoint"),
    ({"time_folded_at": "1"}, "time_folded_at=1 is not the one-step model's t"),
    ({"architecture": "{not json"}, "bad metadata 'architecture'"),
    ({"binarization": '{"rank": 8, "smb": true, "lrmb": true, "shortcut": "yes"}'},
     r"binarization\.shortcut must be true or false"),
    ({"binarization": '{"act_shift": 1, "rank": 8, "smb": true, "lrmb": true}'},
     r"binarization\.act_shift must be true or false"),
])
def test_rejects_bad_metadata(tiny, tmp_path, metadata, message):
    _, path, _ = tiny
    with pytest.raises(CheckpointError, match=message):
        load_packed(_rewrite(path, tmp_path / "bad.safetensors", metadata=metadata))


def test_rejects_tampered_bytes(tiny, tmp_path):
    _, path, _ = tiny
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # inside the data section (the header is at the start)
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="content hash mismatch"):
        load_packed(tampered)


def test_rejects_bad_values_even_with_a_matching_hash(tiny, tmp_path):
    _, path, _ = tiny

    def set_pad_bit(tensors):
        bits = tensors["down.0.0.res.conv1.bits"].copy()  # Cin = 8: bits 8..63 are padding
        bits[0, 0, 0, 0] |= np.uint64(1 << 63)
        tensors["down.0.0.res.conv1.bits"] = bits

    for edit, message in ((set_pad_bit, "pad bits set"),
                          (_replace("down.0.0.res.conv1.smb.index",
                                    np.full(16, 64, np.int32)), "out of")):
        bad = _rewrite(path, tmp_path / "bad.safetensors", edit=edit, rehash=True)
        with pytest.raises(CheckpointError, match=message):
            load_packed(bad)


# Every metadata field is checked (type, range, finiteness, cross-field rules) with the message
# naming it; the file is rehashed, so only the field can make it fail. (Before issue 16, item
# 5: steps "4" raised a TypeError, kappa NaN loaded and wrote black images, steps 2e8 built a
# 5 GB schedule.)
_DIFFUSION = {"kappa": 2.0, "power": 0.3, "sqrt_eta_end": 0.99, "sqrt_eta_start": 0.02,
              "steps": 4}
_ARCHITECTURE = dataclasses.asdict(TINY) | {"widths": list(TINY.widths),
                                            "attn_levels": list(TINY.attn_levels)}
_ARCHITECTURE.pop("shortcuts")
_BINARIZATION = {"lrmb": True, "rank": 8, "rprelu_slope": 0.25, "seed": 0, "smb": True,
                 "svd_init": False}


def _json(base: dict, **change) -> str:
    """``base`` with ``change`` applied (a value ``...`` removes the key) as the format writes
    it, NaN and Infinity included as Python writes them."""
    value = {k: v for k, v in (base | change).items() if v is not ...}
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("metadata, message", [
    # diffusion
    ({"diffusion": _json(_DIFFUSION, steps="4")}, r"diffusion\.steps must be an integer, got '4'"),
    ({"diffusion": _json(_DIFFUSION, steps=2e8)}, r"diffusion\.steps must be an integer"),
    ({"diffusion": _json(_DIFFUSION, steps=200_000_000), "time_folded_at": "199999999"},
     r"diffusion\.steps = 200000000 is out of range \[2, 1000\]"),
    ({"diffusion": _json(_DIFFUSION, steps=1), "time_folded_at": "0"},
     r"diffusion\.steps = 1 is out of range"),
    ({"diffusion": _json(_DIFFUSION, steps=True)}, r"diffusion\.steps must be an integer"),
    ({"diffusion": _json(_DIFFUSION, kappa=float("nan"))}, r"diffusion\.kappa must be finite"),
    ({"diffusion": _json(_DIFFUSION, kappa=float("inf"))}, r"diffusion\.kappa must be finite"),
    ({"diffusion": _json(_DIFFUSION, kappa=-1.0)}, r"diffusion\.kappa = -1\.0 is out of range"),
    ({"diffusion": _json(_DIFFUSION, kappa="2")}, r"diffusion\.kappa must be a number"),
    ({"diffusion": _json(_DIFFUSION, kappa=10**400)}, r"diffusion"),
    ({"diffusion": _json(_DIFFUSION, power=0.0)}, r"diffusion\.power = 0\.0 is out of range"),
    ({"diffusion": _json(_DIFFUSION, sqrt_eta_start=0.0)}, r"diffusion\.sqrt_eta_start = 0\.0"),
    ({"diffusion": _json(_DIFFUSION, sqrt_eta_end=1.5)}, r"diffusion\.sqrt_eta_end = 1\.5"),
    ({"diffusion": _json(_DIFFUSION, sqrt_eta_start=0.9, sqrt_eta_end=0.5)},
     r"diffusion\.sqrt_eta_start = 0\.9 exceeds"),
    ({"diffusion": _json(_DIFFUSION, kappa=...)}, r"diffusion lacks kappa"),
    ({"diffusion": _json(_DIFFUSION, eta=1)}, r"diffusion has unknown fields: eta"),
    ({"diffusion": "[4]"}, r"diffusion must be a JSON object"),
    ({"diffusion": '{"steps":4,"steps":5}'}, r"duplicate keys \['steps'\]"),
    # architecture
    ({"architecture": _json(_ARCHITECTURE, widths=[])}, r"architecture\.widths must list 1 to 6"),
    ({"architecture": _json(_ARCHITECTURE, widths=[8] * 7)}, r"architecture\.widths must list"),
    ({"architecture": _json(_ARCHITECTURE, widths=[8, "16", 16, 16])},
     r"architecture\.widths\[1\] must be an integer"),
    ({"architecture": _json(_ARCHITECTURE, widths=[8, 16, 16, 10**6])},
     r"architecture\.widths\[3\] = 1000000 is out of range"),
    ({"architecture": _json(_ARCHITECTURE, widths="8")}, r"architecture\.widths must be a list"),
    ({"architecture": _json(_ARCHITECTURE, res_blocks=1.0)},
     r"architecture\.res_blocks must be an integer"),
    ({"architecture": _json(_ARCHITECTURE, res_blocks=100)},
     r"architecture\.res_blocks = 100 is out of range"),
    ({"architecture": _json(_ARCHITECTURE, attn_levels=[2, 4])},
     r"architecture\.attn_levels = \[2, 4\] must be distinct levels of the 4 widths"),
    ({"architecture": _json(_ARCHITECTURE, attn_levels=[2, 2])}, r"architecture\.attn_levels"),
    ({"architecture": _json(_ARCHITECTURE, window=0)}, r"architecture\.window = 0 is out of range"),
    ({"architecture": _json(_ARCHITECTURE, head_dim=5)},
     r"architecture\.head_dim = 5: width 16 at attention level 2 is not a multiple of its 3"),
    ({"architecture": _json(_ARCHITECTURE, mlp_ratio=float("nan"))},
     r"architecture\.mlp_ratio must be finite"),
    ({"architecture": _json(_ARCHITECTURE, time_dim=-16)}, r"architecture\.time_dim = -16"),
    ({"architecture": _json(_ARCHITECTURE, in_channels=52)},
     r"architecture\.in_channels = 52 is out of range \[51, 51\]"),
    ({"architecture": _json(_ARCHITECTURE, out_channels=3)}, r"architecture\.out_channels = 3"),
    ({"architecture": _json(_ARCHITECTURE, residual=1)},
     r"architecture\.residual must be true or false"),
    ({"architecture": _json(_ARCHITECTURE, shortcuts="no")},
     r"architecture\.shortcuts must be true or false"),
    ({"architecture": _json(_ARCHITECTURE, extra=[])}, r"architecture\.extra must be a JSON"),
    ({"architecture": _json(_ARCHITECTURE, extra={"x": float("nan")})},
     r"architecture\.extra\.x holds nan"),
    ({"architecture": _json(_ARCHITECTURE, depth=3)}, r"architecture has unknown fields: depth"),
    ({"architecture": _json(_ARCHITECTURE, window=...)}, r"architecture lacks window"),
    # binarization
    ({"binarization": _json(_BINARIZATION, rank=0)}, r"binarization\.rank = 0 is out of range"),
    ({"binarization": _json(_BINARIZATION, rank="8")}, r"binarization\.rank must be an integer"),
    ({"binarization": _json(_BINARIZATION, smb="yes")},
     r"binarization\.smb must be true or false"),
    ({"binarization": _json(_BINARIZATION, lrmb=...)}, r"binarization lacks lrmb"),
    ({"binarization": _json(_BINARIZATION, gain=1)}, r"binarization\.gain must be true or false"),
    ({"binarization": _json(_BINARIZATION, rprelu_slope=float("inf"))},
     r"binarization\.rprelu_slope must be finite"),
    ({"binarization": _json(_BINARIZATION, seed=0.5)}, r"binarization\.seed must be an integer"),
    ({"binarization": _json(_BINARIZATION, lr_act_bases=3)},
     r"binarization\.lr_act_bases = 3 is out of range \[1, 2\]"),
    ({"binarization": _json(_BINARIZATION, lr_act_bases=True)},
     r"binarization\.lr_act_bases must be an integer"),
    ({"binarization": _json(_BINARIZATION, ternary=True)},
     r"binarization has unknown fields: ternary"),
    # the other keys
    ({"time_folded_at": " 3"}, r"time_folded_at = ' 3' is not a decimal integer"),
    ({"time_folded_at": "+3"}, r"time_folded_at = '\+3' is not a decimal integer"),
    ({"time_folded_at": "03"}, r"time_folded_at = '03' is not a decimal integer"),
    ({"time_folded_at": "3_0"}, r"time_folded_at = '3_0' is not a decimal integer"),
    ({"provenance": "[]"}, r"provenance must be a JSON object"),
    ({"provenance": '{"psnr":NaN}'}, r"provenance\.psnr holds nan"),
    ({"provenance": '{"a":[1,-Infinity]}'}, r"provenance\.a\.1 holds -inf"),
    ({"comment": "hello"}, r"unknown metadata keys: comment"),
    ({"diffusion": None}, r"metadata lacks diffusion"),
])
def test_rejects_every_bad_metadata_field(tiny, tmp_path, metadata, message):
    _, path, _ = tiny
    bad = _rewrite(path, tmp_path / "bad.safetensors", metadata=metadata, rehash=True)
    with pytest.raises(CheckpointError, match=message) as info:
        load_packed(bad)
    assert str(bad) in str(info.value)


def test_field_table_admits_what_export_writes(tmp_path):
    """Every architecture the app's tests and configs build (and can run: a width at an
    attention level splits into whole heads) passes the field checks."""
    from bimacosr_app.checkpoint.export import json_value
    from bimacosr_app.checkpoint.load import _architecture, _binarization, _diffusion
    configs = [ModelConfig(), TINY, ModelConfig(shortcuts=True),
               ModelConfig(widths=(16, 24, 36), res_blocks=3, attn_levels=(0, 2), window=4,
                           head_dim=12, mlp_ratio=1.5),
               ModelConfig(widths=(8, 8), res_blocks=1, attn_levels=(1,), window=2,
                           head_dim=3, shortcuts=True, residual=False)]
    for cfg in configs:
        assert _architecture(json_value(cfg.to_dict())) == cfg
    for d in (DiffusionConfig(), DIFFUSION, DiffusionConfig(steps=4, kappa=0.0)):
        assert _diffusion(json_value(d.to_dict())) == d
    model = binarize(Denoiser(TINY), shortcut=True, act_shift=True, gain=True)
    assert _binarization(json_value(model.binarization)) == model.binarization


def test_content_hash_covers_the_metadata(tiny, tmp_path):
    """A valid but changed metadata value (kappa, provenance) no longer matches the stored
    hash; the same change rehashed loads."""
    _, path, _ = tiny
    for metadata in ({"diffusion": _json(_DIFFUSION, kappa=2.5)},
                     {"provenance": '{"source_commit":"forged"}'},
                     {"binarization": _json(_BINARIZATION, rprelu_slope=0.5)}):
        changed = _rewrite(path, tmp_path / "changed.safetensors", metadata=metadata)
        with pytest.raises(CheckpointError, match="content hash mismatch"):
            load_packed(changed)
        rehashed = _rewrite(path, tmp_path / "rehashed.safetensors", metadata=metadata,
                            rehash=True)
        assert load_packed(rehashed).content_sha256 != load_packed(path).content_sha256


def test_reads_format_version_1(tiny, tmp_path):
    """Version 1 files (the hash of the tensors alone) still load, with every field checked."""
    _, path, _ = tiny
    v1 = _rewrite(path, tmp_path / "v1.safetensors", metadata={"format_version": "1"},
                  rehash=True)
    ckpt = load_packed(v1)
    assert ckpt.format_version == "1" and ckpt.tensors.keys() == load_packed(path).tensors.keys()
    bad = _rewrite(path, tmp_path / "v1-nan.safetensors", rehash=True, metadata={
        "format_version": "1", "diffusion": _json(_DIFFUSION, kappa=float("nan"))})
    with pytest.raises(CheckpointError, match=r"diffusion\.kappa must be finite"):
        load_packed(bad)


def test_export_refuses_metadata_the_reader_refuses(tmp_path):
    model = random_model()
    out = tmp_path / "m.safetensors"
    with pytest.raises(CheckpointError, match=r"diffusion\.kappa must be finite"):
        export_packed(model, DiffusionConfig(steps=4, kappa=float("nan")), out, PROVENANCE)
    with pytest.raises(CheckpointError, match=r"provenance\.psnr holds nan"):
        export_packed(model, DIFFUSION, out, {"psnr": float("nan")})
    assert not list(tmp_path.iterdir())


# --- export fidelity ------------------------------------------------------------------------
#
# What the file changes: float16 storage of the full-precision weights (conv_in, conv_out,
# rel_bias) and of the SMB/LRMB values, and FiLM folded into norm2 in float32. Sign bits, beta
# (to_model() rebuilds layers of latent weight +-1 and gain beta: exactly beta * sign), biases,
# RPReLU and norms are exact. So (1) the deploy model equals, bit for bit, the folded training
# form with those float16 roundings applied, and (2) each layer, fed the training form's own
# inputs, differs from it by float16 rounding only. Measured max relative error: tiny float32
# model 3.9e-4 (bound 2e-3; float16 keeps 11 significant bits, 2^-11 = 4.9e-4); the first
# trained run (training saves bf16, which float16 holds exactly except below 2^-14, where
# float16 subnormals keep fewer bits) 0 in 122 of 146 layers, <= 2.2e-7 elsewhere.
#
# The trained model of these tests is the shipped one (resources/models/bimacosr-x4.safetensors,
# committed), not a git-ignored training run: its deploy form (to_model(): time path folded,
# latent weights the packed signs, gain beta) exported again. Its values are those a packed file
# holds already, so the export gives the shipped file's tensors bit for bit (the hash of its
# tensors) and (1) and (2) hold exactly (measured: 0 in every layer; bound 0). What it adds to
# the tiny models is the real architecture at full size with trained values: up to 160 input
# channels (sign rows of three 64-bit words, the last one padded), attention, SMB, LRMB,
# activation thresholds and the fixed shortcut, with its own schedule (kappa 0). (Folding a
# trained time path is left to the tiny cases.)
#
# End to end the binarized network is chaotic: one activation at ~1e-8 flipping sign through
# such a rounding can change every pixel downstream. Measured, first trained model vs
# load(export(model)).to_model() on 40x48 real-photo crops: 13 of 15 (crop, seed) cases
# agree to max 1e-4/255, mean 1e-5/255; the other cases (and the fold's float32 rounding
# alone on some) diverge with max ~80/255, mean ~12/255, which is about half of what changing
# the seed does (max ~130/255, mean ~21/255). A whole-image tolerance cannot tell that from a
# bug, so the image-level check is (1), which is exact.

_F16_BRANCHES = ("smb_value", "lrmb_down", "lrmb_up")


def _folded(model: Denoiser) -> Denoiser:
    """A copy of ``model`` with its time path folded (as it is if already folded)."""
    folded = copy.deepcopy(model)
    return folded if folded.folded_t is not None else fold_time(folded, DIFFUSION.steps - 1)


def _stored_precision(model: Denoiser) -> Denoiser:
    """Folded copy of a training-form model with the values the file keeps in float16
    rounded to float16: the network the packed file describes."""
    folded = _folded(model)
    with torch.no_grad():
        for name, p in folded.named_parameters():
            owner_name, _, field = name.rpartition(".")
            owner = folded.get_submodule(owner_name)
            binary = isinstance(owner, (BinaryConv2d, BinaryLinear))
            if (binary and field in _F16_BRANCHES) or (not binary and p.dim() >= 2):
                p.copy_(p.half().float())
    return folded


def _layer_errors(reference: Denoiser, deploy: Denoiser, diffusion: DiffusionConfig,
                  lr01: torch.Tensor) -> dict:
    """Max relative error (vs the layer's max |output|) of every parameterised leaf layer of
    ``deploy`` fed the inputs its counterpart in ``reference`` saw during one upscale."""
    # Leaves only: a layer holding binarized sublayers (attention) is itself chaotic.
    kinds = (BinaryConv2d, BinaryLinear, torch.nn.Conv2d, torch.nn.LayerNorm)
    seen, hooks = {}, []

    def record(name):
        def hook(module, args, out):  # every such layer runs once per forward
            seen[name] = (args, out)
        return hook

    for name, module in reference.named_modules():
        if isinstance(module, kinds):
            hooks.append(module.register_forward_hook(record(name)))
    with torch.no_grad():
        upscale_tile(reference, ResShiftSchedule(diffusion), lr01, seed=7)
        for h in hooks:
            h.remove()
        return {name: ((deploy.get_submodule(name)(*args) - out).abs().max()
                       / out.abs().max().clamp_min(1e-12)).item()
                for name, (args, out) in seen.items()}


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    """``get(which) -> (training-form model, load(export(model)).to_model(), its diffusion
    config)``, built once per model."""
    cache = {}

    def get(which):
        if which not in cache:
            diffusion = DIFFUSION
            if which == "shipped":
                ckpt = load_packed(SHIPPED)
                diffusion = ckpt.diffusion  # its own kappa; folded at t = steps - 1
                assert ckpt.time_folded_at == diffusion.steps - 1 == DIFFUSION.steps - 1
                model = ckpt.to_model()
                path = tmp_path_factory.mktemp("shipped") / "model.safetensors"
                export_packed(model, diffusion, path, PROVENANCE)
                # file -> deploy model -> file gives the same tensors, bit for bit (the
                # content hash of the tensors; the file's also covers its provenance)
                assert content_sha256(load_packed(path).tensors, None) == content_sha256(
                    ckpt.tensors, None)
            elif which == "tiny with shortcut":
                model = random_model(shortcut=True)
                path = tmp_path_factory.mktemp("shortcut") / "model.safetensors"
                export_packed(model, DIFFUSION, path, PROVENANCE)
                assert load_packed(path).binarization["shortcut"] is True
            elif which == "tiny with activation thresholds":
                model = random_model(act_shift=True)
                path = tmp_path_factory.mktemp("act_shift") / "model.safetensors"
                export_packed(model, DIFFUSION, path, PROVENANCE)
                ckpt = load_packed(path)
                assert ckpt.binarization["act_shift"] is True
                layer = model.get_submodule("down.0.0.res.conv1")
                np.testing.assert_array_equal(ckpt.tensors["down.0.0.res.conv1.act_shift"],
                                              layer.act_shift.detach().numpy())
            elif which == "tiny shortcut parent with gains":
                model = random_model(dataclasses.replace(TINY, shortcuts=True), act_shift=True,
                                     gain=True)
                path = tmp_path_factory.mktemp("gain") / "model.safetensors"
                export_packed(model, DIFFUSION, path, PROVENANCE)
                ckpt = load_packed(path)
                assert ckpt.binarization["shortcut"] is True
                layer = model.get_submodule("down.0.0.res.conv1")
                assert not torch.all(layer.gain == 1)
                np.testing.assert_array_equal(  # the gain is folded into beta
                    ckpt.tensors["down.0.0.res.conv1.beta"],
                    (layer.weight.abs().mean(dim=(1, 2, 3)) * layer.gain).detach().numpy())
            else:
                model, path, _ = tiny
            cache[which] = model, load_packed(path).to_model(), diffusion
        return cache[which]
    return get


@pytest.mark.parametrize("which", ["tiny random float32", "tiny with shortcut",
                                   "tiny with activation thresholds",
                                   "tiny shortcut parent with gains", "shipped"])
def test_deploy_model_is_exactly_the_stored_precision_network(which, exported):
    model, deploy, diffusion = exported(which)
    reference, lr01 = _stored_precision(model), photo_crop()
    schedule = ResShiftSchedule(diffusion)
    with torch.no_grad():
        assert torch.equal(upscale_tile(deploy, schedule, lr01, seed=1),
                           upscale_tile(reference, schedule, lr01, seed=1))


@pytest.mark.parametrize("which, bound", [("tiny random float32", 2e-3),
                                          ("tiny with shortcut", 2e-3),
                                          ("tiny with activation thresholds", 2e-3),
                                          ("tiny shortcut parent with gains", 2e-3),
                                          ("shipped", 0.0)])
def test_each_layer_differs_by_float16_storage_only(which, bound, exported):
    model, deploy, diffusion = exported(which)
    errors = _layer_errors(_folded(model), deploy, diffusion, photo_crop())
    assert len(errors) > 20
    worst = max(errors, key=errors.get)
    assert errors[worst] <= bound, (worst, errors[worst])


if __name__ == "__main__":
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    print(export_packed(golden_model(), DIFFUSION, GOLDEN, PROVENANCE), GOLDEN)
    print(json.dumps({"bytes": GOLDEN.stat().st_size}))
