"""Validated loading of packed checkpoints (format.py) and the deploy-form torch model.

:func:`load_packed` reads the file with safetensors' NumPy API (never pickle, never
``torch.load``) and checks everything format.py's "Validation" lists before returning; any
problem raises :class:`CheckpointError`. Reading and validating need no torch (the CPU runtime
loads the model this way); only :meth:`PackedCheckpoint.to_model` and
:meth:`PackedCheckpoint.schedule`, the torch forms, import it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors import SafetensorError, safe_open

from ..model.config import DiffusionConfig, ModelConfig
from ..model.layout import DenoiserLayout
from .bitpack import unpack_signs
from .format import (
    ARCHITECTURE_FIELDS,
    BINARIZATION_FIELDS,
    DIFFUSION_FIELDS,
    DTYPES,
    FORMAT_NAME,
    MAX_LEVELS,
    METADATA_KEYS,
    READABLE_VERSIONS,
    CheckpointError,
    content_sha256,
    dtype_code,
    expected_tensors,
)

if TYPE_CHECKING:
    import torch

    from ..model.diffusion import ResShiftSchedule
    from ..model.unet import Denoiser

__all__ = ["PackedCheckpoint", "load_packed"]

# packed name suffix -> training-form state-dict suffix, for the branch tensors
_BRANCH_NAMES = {".smb.index": ".smb_index", ".smb.value": ".smb_value",
                 ".lrmb.down": ".lrmb_down", ".lrmb.up": ".lrmb_up"}


@dataclass(frozen=True)
class PackedCheckpoint:
    """A validated packed checkpoint: its tensors (numpy, dtypes and shapes as format.py
    specifies) and parsed metadata."""

    path: Path
    file_size: int  # bytes
    tensors: dict[str, np.ndarray]
    architecture: ModelConfig
    binarization: dict
    diffusion: DiffusionConfig
    time_folded_at: int  # = diffusion.steps - 1
    provenance: dict
    content_sha256: str
    format_version: str

    @property
    def binary_layers(self) -> list[str]:
        """Qualified names of the binarized layers (the prefixes of ``*.bits``), sorted."""
        return sorted(k[: -len(".bits")] for k in self.tensors if k.endswith(".bits"))

    def schedule(self) -> ResShiftSchedule:
        """The diffusion schedule (torch)."""
        from ..model.diffusion import ResShiftSchedule

        return ResShiftSchedule(self.diffusion)

    def to_model(self, device: torch.device | str = "cpu") -> Denoiser:
        """The deploy-form Denoiser: time path folded, eval mode, frozen, float32.

        Binarized layers are BinaryConv2d/BinaryLinear whose latent weight is the packed signs
        (+-1, so ``mean |W_b|`` is exactly 1) and whose gain is ``beta``: their
        ``scaled_binary_weight()`` is exactly ``beta_o * sign``. Bias, RPReLU, SMB, LRMB and
        activation thresholds come from the file (fp16 values widened to float32). Built on the
        CPU, then moved to ``device``.
        """
        import torch

        from ..model.convert import binarize
        from ..model.fold import fold_time
        from ..model.unet import Denoiser

        model = Denoiser(self.architecture)
        b = self.binarization
        # Structure only (which branches, their sizes); every value is replaced below.
        binarize(model, rank=b["rank"], smb=b["smb"], lrmb=b["lrmb"], svd_init=False,
                 shortcut=b.get("shortcut", False), act_shift=b.get("act_shift", False),
                 gain=True, lr_act_bases=b.get("lr_act_bases", 1))
        fold_time(model, self.time_folded_at)
        state = {}
        for name, array in self.tensors.items():
            if name.endswith(".beta"):
                state[name[: -len(".beta")] + ".gain"] = torch.from_numpy(np.array(array))
                continue
            if name.endswith(".bits"):
                prefix = name[: -len(".bits")]
                cin = model.get_submodule(prefix).in_features
                signs = unpack_signs(array, cin)  # (Cout,kh,kw,Cin) or (Cout,Cin)
                if signs.ndim == 4:
                    signs = signs.transpose(0, 3, 1, 2)  # (Cout,Cin,kh,kw)
                state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(signs))
                continue
            key = next((name[: -len(s)] + t for s, t in _BRANCH_NAMES.items()
                        if name.endswith(s)), name)
            value = torch.from_numpy(np.array(array))
            state[key] = value.long() if key.endswith(".smb_index") else value.float()
        model.load_state_dict(state, strict=True)
        return model.to(device).eval().requires_grad_(False)


def load_packed(path: str | Path) -> PackedCheckpoint:
    """Read and validate a packed checkpoint; raises CheckpointError naming any problem."""
    path = Path(path)
    try:
        file_size = path.stat().st_size
        with safe_open(str(path), framework="np") as f:
            raw = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file "
                              f"(truncated or corrupt?): {exc}") from exc
    meta = _parse_metadata(path, raw)
    try:
        expected = expected_tensors(meta["architecture"], meta["binarization"])
    except Exception as exc:  # an architecture the network code cannot build
        raise CheckpointError(f"{path}: unusable architecture in metadata: {exc}") from exc
    _check_layout(path, tensors, expected)
    digest = content_sha256(tensors, raw if meta["format_version"] != "1" else None)
    if digest != meta["content_sha256"]:
        raise CheckpointError(f"{path}: content hash mismatch (file says "
                              f"{meta['content_sha256']}, its content hashes to {digest}): "
                              "the file was modified or damaged")
    _check_values(path, tensors, meta["architecture"])
    return PackedCheckpoint(path=path, file_size=file_size, tensors=tensors, **meta)


def _json(text: str):
    """A metadata JSON value; duplicate keys are refused. NaN and Infinity parse (as Python
    reads them) so that the field checks can name the field that holds one."""
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate keys {sorted({k for k in keys if keys.count(k) > 1})}")
        return dict(pairs)

    return json.loads(text, object_pairs_hook=no_duplicates)


def _finite_json(name: str, value) -> None:
    """A free-form JSON value (provenance, architecture.extra) holds no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} holds {value!r}, which is not JSON")
    for key, item in (value.items() if isinstance(value, dict)
                      else enumerate(value) if isinstance(value, list) else ()):
        _finite_json(f"{name}.{key}", item)


def _field(name: str, value, kind: str, low, high):
    """``value`` checked against one entry of format.py's field tables; returns it (a float
    for "float"). ValueError naming the field otherwise."""
    def in_range(v, what=""):
        if (low is not None and v < low) or (high is not None and v > high):
            raise ValueError(f"{name}{what} = {v!r} is out of range [{low}, {high}]")

    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        in_range(value)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        try:
            value = float(value)
        except OverflowError:  # an int beyond float range
            raise ValueError(f"{name} = {value} is out of range [{low}, {high}]") from None
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        in_range(value)
    elif kind == "ints":
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a list of integers, got {value!r}")
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name}[{i}] must be an integer, got {v!r}")
            in_range(v, f"[{i}]")
    elif kind == "object":
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be a JSON object, got {value!r}")
        _finite_json(name, value)
    return value


def _fields(section: str, text: str, table: dict[str, tuple]) -> dict:
    """A metadata JSON object whose keys are exactly ``table``'s (the optional ones may be
    absent), every field checked; returns the checked values."""
    value = _json(text)
    if not isinstance(value, dict):
        raise ValueError(f"{section} must be a JSON object")
    unknown = sorted(set(value) - set(table))
    if unknown:
        raise ValueError(f"{section} has unknown fields: {', '.join(unknown)}")
    missing = [k for k, (_, _, _, required) in table.items() if required and k not in value]
    if missing:
        raise ValueError(f"{section} lacks {', '.join(missing)}")
    return {k: _field(f"{section}.{k}", v, *table[k][:3]) for k, v in value.items()}


def _architecture(text: str) -> ModelConfig:
    d = _fields("architecture", text, ARCHITECTURE_FIELDS)
    widths, levels = d["widths"], d["attn_levels"]
    if not 1 <= len(widths) <= MAX_LEVELS:
        raise ValueError(f"architecture.widths must list 1 to {MAX_LEVELS} widths, got "
                         f"{len(widths)}")
    if len(set(levels)) != len(levels) or any(level >= len(widths) for level in levels):
        raise ValueError(f"architecture.attn_levels = {levels} must be distinct levels of "
                         f"the {len(widths)} widths")
    for level in levels:
        width = widths[level]
        heads = max(1, width // d["head_dim"])
        if width % heads:
            raise ValueError(f"architecture.head_dim = {d['head_dim']}: width {width} at "
                             f"attention level {level} is not a multiple of its {heads} heads")
        if int(width * d["mlp_ratio"]) < 1:
            raise ValueError(f"architecture.mlp_ratio = {d['mlp_ratio']} leaves no hidden "
                             f"channel at width {width}")
    return ModelConfig.from_dict(d)


def _diffusion(text: str) -> DiffusionConfig:
    d = _fields("diffusion", text, DIFFUSION_FIELDS)
    if d["sqrt_eta_start"] > d["sqrt_eta_end"]:
        raise ValueError(f"diffusion.sqrt_eta_start = {d['sqrt_eta_start']} exceeds "
                         f"diffusion.sqrt_eta_end = {d['sqrt_eta_end']}")
    return DiffusionConfig(**d)


def _binarization(text: str) -> dict:
    return _fields("binarization", text, BINARIZATION_FIELDS)


def _time_folded_at(text: str) -> int:
    if not re.fullmatch(r"0|[1-9][0-9]{0,5}", text):
        raise ValueError(f"time_folded_at = {text!r} is not a decimal integer")
    return int(text)


def _provenance(text: str) -> dict:
    return _field("provenance", _json(text), "object", None, None)


def _digest(text: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ValueError("content_sha256 is not a lowercase hex sha256")
    return text


def _parse_metadata(path: Path, raw: dict[str, str]) -> dict:
    """Check format, version, the set of keys and every field (format.py's "Metadata");
    return PackedCheckpoint's metadata fields."""
    fmt = raw.get("format")
    if fmt != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a {FORMAT_NAME} checkpoint (format={fmt!r})")
    version = raw.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(f"{path}: unsupported format_version {version!r}; this version "
                              f"of the app reads format_version "
                              f"{' and '.join(map(repr, READABLE_VERSIONS))}")
    missing = [k for k in METADATA_KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: metadata lacks {', '.join(missing)}")
    unknown = sorted(set(raw) - set(METADATA_KEYS))
    if unknown:
        raise CheckpointError(f"{path}: unknown metadata keys: {', '.join(unknown)}")

    def parse(key, build):
        try:
            return build(raw[key])
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise CheckpointError(f"{path}: bad metadata {key!r}: {exc}") from exc

    meta = {
        "format_version": version,
        "architecture": parse("architecture", _architecture),
        "binarization": parse("binarization", _binarization),
        "diffusion": parse("diffusion", _diffusion),
        "time_folded_at": parse("time_folded_at", _time_folded_at),
        "provenance": parse("provenance", _provenance),
        "content_sha256": parse("content_sha256", _digest),
    }
    if meta["time_folded_at"] != meta["diffusion"].steps - 1:
        raise CheckpointError(f"{path}: time_folded_at={meta['time_folded_at']} is not the "
                              f"one-step model's t = steps - 1 = {meta['diffusion'].steps - 1}")
    return meta


def _check_layout(path: Path, tensors: dict[str, np.ndarray], expected: dict):
    """Exactly the expected names, each with the expected dtype and shape."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = [f"missing tensors: {', '.join(missing[:5])}" if missing else "",
                 f"unexpected tensors: {', '.join(unexpected[:5])}" if unexpected else ""]
        raise CheckpointError(f"{path}: {'; '.join(p for p in parts if p)}")
    for name in sorted(expected):
        spec, a = expected[name], tensors[name]
        if a.dtype not in DTYPES.values() or dtype_code(a.dtype) != spec.dtype:
            raise CheckpointError(f"{path}: tensor {name} has dtype {a.dtype}, "
                                  f"expected {DTYPES[spec.dtype]} ({spec.dtype})")
        if tuple(a.shape) != spec.shape:
            raise CheckpointError(f"{path}: tensor {name} has shape {list(a.shape)}, "
                                  f"expected {list(spec.shape)}")


def _check_values(path: Path, tensors: dict[str, np.ndarray], architecture: ModelConfig):
    """SMB positions in range, pad bits zero, float values finite."""
    for name, a in sorted(tensors.items()):
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise CheckpointError(f"{path}: tensor {name} holds non-finite values")
    layers = {layer.name: layer for layer in DenoiserLayout(architecture).binary_layers()}
    for name in (k for k in sorted(tensors) if k.endswith(".bits")):
        prefix = name[: -len(".bits")]
        cin, cout = layers[prefix].cin, layers[prefix].cout
        if cin % 64:
            pad = ~np.uint64((1 << (cin % 64)) - 1)  # bits of channels >= Cin in the last word
            if (tensors[name][..., -1] & pad).any():
                raise CheckpointError(f"{path}: tensor {name} has pad bits set")
        index = tensors.get(f"{prefix}.smb.index")
        if index is not None and (index.min() < 0 or index.max() >= cout * cin):
            raise CheckpointError(f"{path}: tensor {prefix}.smb.index is out of "
                                  f"[0, {cout * cin})")
