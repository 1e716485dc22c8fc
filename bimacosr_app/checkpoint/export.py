"""Write packed checkpoints (format.py) and the FP32 file of the same network (size baseline).

Both writers are deterministic and atomic: the bytes go to a temporary file in the target
folder, which is then renamed over the target, so a reader never sees a half-written file.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write_bytes
from ..model.binary import BinaryConv2d, BinaryLinear
from ..model.diffusion import DiffusionConfig
from ..model.fold import fold_time
from ..model.layout import resolution_level
from ..model.unet import Denoiser
from .bitpack import pack_signs
from .format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    content_sha256,
    dtype_code,
    expected_tensors,
    is_time_path,
)
from .load import _parse_metadata

__all__ = ["export_fp32", "export_packed", "json_value"]


def json_value(value) -> str:
    """Metadata JSON as the format writes it: sorted keys, no spaces. (NaN and Infinity are
    written as Python does, for the reader's field checks to refuse them by name: export_packed
    checks its metadata before writing.)"""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().to(torch.float32).numpy().astype(dtype))


def _binary_layer_tensors(prefix: str, layer: BinaryConv2d | BinaryLinear) -> dict:
    """The packed tensors of one binarized layer (format.py's table)."""
    w = layer.weight.detach().cpu().to(torch.float32)  # (Cout,Cin,kh,kw) or (Cout,Cin)
    with torch.no_grad():
        beta = layer.beta().cpu().to(torch.float32)  # (Cout,): the gain folds in
    w_last = w.permute(0, 2, 3, 1) if w.dim() == 4 else w  # Cin last
    out = {f"{prefix}.bits": pack_signs(w_last.numpy()),  # sign(0) = +1 -> bit 0
           f"{prefix}.beta": _np(beta, "<f4")}
    if layer.bias is not None:
        out[f"{prefix}.bias"] = _np(layer.bias, "<f4")
    if isinstance(layer, BinaryConv2d):
        for field in ("shift_in", "slope", "shift_out"):
            out[f"{prefix}.rprelu.{field}"] = _np(getattr(layer.rprelu, field), "<f4")
    if layer.has_smb:
        if layer.in_features * layer.out_features > np.iinfo(np.int32).max:
            raise ValueError(f"{prefix}: SMB positions do not fit int32")
        out[f"{prefix}.smb.index"] = layer.smb_index.cpu().numpy().astype("<i4")
        out[f"{prefix}.smb.value"] = _np(layer.smb_value, "<f2")
    if layer.has_lrmb:
        out[f"{prefix}.lrmb.down"] = _np(layer.lrmb_down, "<f2")
        out[f"{prefix}.lrmb.up"] = _np(layer.lrmb_up, "<f2")
    if layer.has_act_shift:
        out[f"{prefix}.act_shift"] = _np(layer.act_shift, "<f4")
    return out


def _in_layer(name: str, layers: set[str]) -> bool:
    """Whether state-dict entry ``name`` belongs to (a submodule of) one of ``layers``."""
    parts = name.split(".")
    return any(".".join(parts[:i]) in layers for i in range(1, len(parts)))


def _folded_copy(model: Denoiser, t: int) -> Denoiser:
    """A float32 CPU copy of ``model`` with its time path folded at t."""
    if model.folded_t not in (None, t):
        raise ValueError(f"model is folded at t={model.folded_t}, the one-step model needs {t}")
    deploy = copy.deepcopy(model).cpu().float().eval()
    return deploy if deploy.folded_t is not None else fold_time(deploy, t)


def export_packed(model: Denoiser, diffusion: DiffusionConfig, path: str | Path,
                  provenance: dict) -> str:
    """Pack a binarized training-form Denoiser (``binarize()`` applied; time path folded or
    not) into ``path``; returns the content hash. Metadata the reader would refuse (format.py's
    ranges) raises CheckpointError (a ValueError) before anything is written.

    The time path is folded at ``diffusion.steps - 1`` on a copy, ``model`` is not changed.
    ``provenance`` is any JSON-serializable dict (commit, data, steps, metrics).
    """
    binarization = getattr(model, "binarization", None)
    if binarization is None:
        raise ValueError("export_packed needs a binarized model (apply model.binarize first)")
    _check_act_bases(model, binarization.get("lr_act_bases", 1))
    t = diffusion.steps - 1
    deploy = _folded_copy(model, t)
    tensors: dict[str, np.ndarray] = {}
    binary = set()
    for name, module in deploy.named_modules():
        if isinstance(module, (BinaryConv2d, BinaryLinear)):
            tensors.update(_binary_layer_tensors(name, module))
            binary.add(name)
    for name, value in deploy.state_dict().items():
        if not _in_layer(name, binary):  # full precision: vectors f32, weights f16
            tensors[name] = _np(value, "<f4" if value.dim() == 1 else "<f2")

    expected = expected_tensors(deploy.config, binarization)
    if set(expected) != set(tensors) or any(
            (dtype_code(tensors[k].dtype), tensors[k].shape) != (s.dtype, s.shape)
            for k, s in expected.items()):
        raise ValueError("model does not match its architecture's packed layout "
                         "(is every binarizable layer binarized?)")
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": json_value(deploy.config.to_dict()),
        "binarization": json_value(binarization),
        "diffusion": json_value(diffusion.to_dict()),
        "time_folded_at": str(t),
        "provenance": json_value(provenance),
    }
    metadata["content_sha256"] = digest = content_sha256(tensors, metadata)
    _parse_metadata(Path(path), metadata)  # what the reader would refuse is not written
    _write_safetensors(Path(path), tensors, metadata)
    return digest


def _check_act_bases(model: Denoiser, lr_act_bases: int) -> None:
    """The format gives two activation bases to exactly the LR-resolution convs, and only with
    ``lr_act_bases`` 2 (format.py): a model whose layers say otherwise has no packed form."""
    deepest = len(model.config.widths) - 1
    for name, module in model.named_modules():
        if isinstance(module, BinaryConv2d):
            expected = lr_act_bases if resolution_level(name, deepest) == 0 else 1
            if module.act_bases != expected:
                raise ValueError(f"{name} has {module.act_bases} activation bases; the packed "
                                 f"format gives it {expected} (binarization lr_act_bases "
                                 f"{lr_act_bases})")


def export_fp32(model: Denoiser, path: str | Path) -> None:
    """Write the full-precision network of the same architecture as float32 safetensors.

    ``model`` must be time-folded (e.g. ``load_packed(...).to_model()``). Every layer is stored
    dense under the FP Denoiser's state-dict names; a binarized layer becomes the FP weight it
    approximates, ``W_b + centre(SMB + LRMB)`` (what ``binarize()`` decomposed), with the bias
    ``b - W_b s`` of an unshifted input where the layer has an activation threshold s; its
    RPReLU, which the FP network has not, is dropped. The file holds
    ``fp32_parameter_count(model.config)`` float32 values.
    """
    if model.folded_t is None:
        raise ValueError("export_fp32 needs a time-folded model (see model.fold_time)")
    tensors: dict[str, np.ndarray] = {}
    binary = set()
    for name, module in model.named_modules():
        if isinstance(module, (BinaryConv2d, BinaryLinear)):
            binary.add(name)
            with torch.no_grad():
                w = module.weight.detach().cpu().float().clone()  # (Cout,Cin[,k,k])
                if module.has_gain:
                    w *= module.gain.detach().cpu().float().view(-1, *([1] * (w.dim() - 1)))
                m = module.branch_matrix()  # (Cout, Cin) or None
                if m is not None:
                    centre = (slice(None), slice(None),
                              *((module.kernel_size // 2,) * 2 if w.dim() == 4 else ()))
                    w[centre] += m.cpu().float()
                bias = None if module.bias is None else module.bias.detach().cpu().float()
                if module.has_act_shift:  # conv(x - s, W_b) + b = conv(x, W_b) + b - W_b s
                    bias = bias - module.shift_through_weight().cpu().float()
            tensors[f"{name}.weight"] = _np(w, "<f4")
            if bias is not None:
                tensors[f"{name}.bias"] = _np(bias, "<f4")
    for name, value in model.state_dict().items():
        if not _in_layer(name, binary) and not is_time_path(name):
            tensors[name] = _np(value, "<f4")
    metadata = {"format": "bimacosr-fp32", "architecture": json_value(model.config.to_dict()),
                "time_folded_at": str(model.folded_t)}
    _write_safetensors(Path(path), tensors, metadata)


def _safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """Deterministic safetensors serialization (layout in format.py's "File")."""
    order = sorted(tensors, key=lambda k: (-tensors[k].dtype.itemsize, k))  # aligned data
    offsets, pos = {}, 0
    for name in order:
        offsets[name] = (pos, pos + tensors[name].nbytes)
        pos += tensors[name].nbytes
    header = {"__metadata__": dict(sorted(metadata.items()))}
    for name in sorted(tensors):
        header[name] = {"dtype": dtype_code(tensors[name].dtype),
                        "shape": list(tensors[name].shape),
                        "data_offsets": list(offsets[name])}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return b"".join([len(text).to_bytes(8, "little"), text,
                     *(np.ascontiguousarray(tensors[k]).tobytes() for k in order)])


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]):
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, _safetensors_bytes(tensors, metadata))

