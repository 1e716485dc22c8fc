"""The packed BiMaCoSR checkpoint, format ``bimacosr-packed`` version 2: the specification.

docs/CHECKPOINT.md is the same text for humans, with a worked example of the bit layout.

File
----
A safetensors file: an 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON header
(padded with spaces to a multiple of 8), then the data section. Every tensor is little-endian,
C order, and the data section holds each tensor exactly once with no gaps. The writer here is
deterministic (same model, metadata and provenance -> the same bytes): the header lists
``__metadata__`` (keys sorted) and then the tensors in sorted name order, and the data section
stores them by decreasing item size, then name, so every tensor is aligned to its item size.

Network
-------
The tensors describe the one-step, time-folded deploy form of ``Denoiser(architecture)``
binarized by ``binarize(rank, smb, lrmb)`` (``model/``): ``time_embed`` and every ResBlock's
``film`` are gone, their constants at ``t = time_folded_at = diffusion.steps - 1`` folded into
each ResBlock's ``norm2`` (``model/fold.py``). Stride, kernel size and which branches exist are
implied by the architecture and binarization metadata, never stored per tensor.

Tensors of a binarized layer
----------------------------
For every layer ``binarizable_layers()`` names (every Conv2d and Linear except ``conv_in`` and
``conv_out``), with prefix ``P`` = its qualified module name (e.g. ``down.1.0.res.conv1``),
``Cw = ceil(Cin / 64)``, ``n = min(2 * max(Cin, Cout), Cin * Cout)``,
``r = min(rank, Cin, Cout)``:

    name                  dtype    shape              content
    P.bits                uint64   [Cout, k, k, Cw]   sign bits of the latent weight W_b (convs,
                                   [Cout, Cw]         1x1 too), resp. linears
    P.beta                float32  [Cout]             beta_o = mean |W_b| over (Cin, kh, kw),
                                                      times the layer's trained gain when it
                                                      has one (``binarize(gain=True)``)
    P.bias                float32  [Cout]             bias b (when the layer has one)
    P.rprelu.shift_in     float32  [Cout]             RPReLU (convs only)
    P.rprelu.slope        float32  [Cout]
    P.rprelu.shift_out    float32  [Cout]
    P.smb.index           int32    [n]                SMB positions o * Cin + i, each in
                                                      [0, Cout * Cin)  (when ``smb``)
    P.smb.value           float16  [n]                SMB values
    P.lrmb.down           float16  [r, Cin]           LRMB "B"  (when ``lrmb``)
    P.lrmb.up             float16  [Cout, r]          LRMB "A"
    P.act_shift           float32  [Cin]              activation threshold s (when
                                                      ``act_shift``)

Bit rule: W_b is permuted to (Cout, kh, kw, Cin) (linears: (Cout, Cin)) and its LAST axis is
packed into 64-bit little-endian words: bit j of word w is the sign of input channel 64w + j,
1 = negative (W_b < 0), 0 = non-negative, so ``sign(0) = +1`` packs as 0; pad bits (channels
>= Cin in the last word) are 0. ``checkpoint.bitpack.pack_signs`` implements the rule.

The layer computes ``y = RPReLU(beta_o * conv(alpha * sign(x - s), sign(W_b)) + b) + SMB(x) +
LRMB(x)`` with ``alpha_p = mean |x - s|`` over channels per pixel (per token for linears), ``s``
the layer's ``act_shift`` (0 in files without it; ``x - s`` in float32, its sign bit 1 where it
is < 0), and SMB and LRMB as 1x1 Cin -> Cout operators (stride-matched) on the full-precision
input; linears have no RPReLU (DESIGN.md 3). Zero padding applies to ``alpha * sign(x - s)``:
padded pixels have alpha = 0. beta is exactly what training computes from the latent weights
(and gain), so ``beta_o * sign`` is the ``scaled_binary_weight()`` output training used.

Two activation bases (binarization ``lr_act_bases`` 2): every 1-bit conv whose output is at LR
resolution (``model.layout.resolution_level`` 0: ``down.0.*``, ``up.0.*``, ``upsample.0.conv``,
``fuse.0``) binarizes its input twice, with the same weights: with ``d = x - s``, the first base
is ``alpha1 * sign(d)`` as above and the second ``alpha2 * sign(r)`` of the residual ``r = d -
alpha1 * sign(d)`` (float32, one rounding; ``alpha2_p = mean |r|``), and ``conv(alpha1 *
sign(d) + alpha2 * sign(r), sign(W_b))`` replaces the conv above. The layer's tensors are the
same; only the binarization metadata says which layers do this.

Full-precision tensors
----------------------
Every other state-dict entry of the folded network, under its state-dict name: ``conv_in``,
``conv_out``, all LayerNorms (``norm2`` folded), attention ``rel_bias``. Dtype rule for the whole
file: per-channel vectors (rank-1: biases, norm affines, beta, RPReLU) are float32; weights
(rank >= 2: conv/linear weights, ``rel_bias``, LRMB factors) and SMB values are float16; sign
bits are uint64 and SMB positions int32.

Metadata (all values strings)
-----------------------------
    format            "bimacosr-packed"
    format_version    "2"; readers reject versions they do not know (version 1 below)
    architecture      ModelConfig.to_dict() as JSON
    binarization      JSON with rank, smb, lrmb; optional shortcut (default false: absent in
                      files without it) adds model.shortcut.shortcut_matrix(Cout, Cin) to the
                      branch of every layer the architecture gives one (a fixed operator, so
                      no tensor): with architecture ``shortcuts`` every layer but the ResBlock
                      convs (residual units, whose identity is the block's), else every layer;
                      optional act_shift (default false) gives every binarized layer its
                      ``P.act_shift``; optional lr_act_bases (default 1: absent in files
                      without it) 2 gives the convs at LR resolution two activation bases
                      (above); svd_init, rprelu_slope, gain and seed are informational
    diffusion         DiffusionConfig.to_dict() as JSON (T = steps)
    time_folded_at    the t the time path was folded at, decimal; always steps - 1
    provenance        JSON object from the exporter's caller (source commit, data, steps,
                      metrics); informational
    content_sha256    hex sha256 of the metadata and the tensors (below)

JSON values are written with sorted keys and no spaces, and are strict JSON (no NaN or
Infinity). A file holds exactly these keys. Each field of the JSON values, with its type
(an int is not a bool; a float may be written as an int) and its range, both ends included:

    architecture  widths        list of 1-6 ints, each 1-4096
                  res_blocks    int 1-16
                  attn_levels   list of distinct ints, each a level: 0 .. len(widths) - 1
                  window        int 1-32
                  head_dim      int 1-4096; at each attention level the width is a multiple
                                of its heads, max(1, width // head_dim)
                  mlp_ratio     float 0.0625-16, int(width * mlp_ratio) >= 1 at attention levels
                  time_dim      int 1-4096
                  in_channels   int 51 (the 48 latent channels and RGB)
                  out_channels  int 48
                  residual      bool
                  shortcuts     bool, optional (written only when true)
                  extra         JSON object (informational)
    binarization  rank          int 1-4096
                  smb, lrmb     bool
                  shortcut, act_shift, svd_init, gain   bool, optional
                  lr_act_bases  int 1-2, optional (written only when 2)
                  rprelu_slope  float -100-100, optional
                  seed          int -2^63 .. 2^64 - 1, optional
    diffusion     steps         int 2-1000
                  power         float 0.01-10
                  kappa         float 0-100
                  sqrt_eta_start, sqrt_eta_end   float 1e-6-1, start <= end
    time_folded_at              decimal digits without sign or leading zeros, = steps - 1

The content hash is sha256 over the UTF-8 bytes of the metadata without ``content_sha256`` as
one JSON object (keys sorted, no spaces, non-ASCII escaped: ``json.dumps(..., sort_keys=True,
separators=(",", ":"))``) and a newline, then, for each tensor in ascending name order (Python
``sorted`` of the names), the UTF-8 bytes of ``name + "\\n" + dtype + "\\n" + shape + "\\n"``
(dtype as the safetensors code ``U64``/``F32``/``I32``/``F16``, shape as comma-separated
decimals, empty for a scalar) followed by the tensor's little-endian data bytes. So any change
of a metadata value or of a tensor changes it.

Version 1 is version 2 with a content hash of the tensors alone (the same without the metadata
line); readers still read it, validating every metadata field the same way.

Validation
----------
A reader checks, before using anything: the safetensors framing, ``format``, ``format_version``,
the exact set of metadata keys, every field above (type, range, finiteness, the cross-field
rules), the exact set of tensor names implied by the architecture and binarization, every dtype
and shape, the content hash, then the values: SMB positions in range, pad bits 0, floats finite.
Any failure is a :class:`CheckpointError` naming what is wrong (a metadata field as
``diffusion.kappa``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from ..model.config import ModelConfig
from ..model.layout import DenoiserLayout

__all__ = [
    "ARCHITECTURE_FIELDS",
    "BINARIZATION_FIELDS",
    "DIFFUSION_FIELDS",
    "DTYPES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_LEVELS",
    "METADATA_KEYS",
    "READABLE_VERSIONS",
    "CheckpointError",
    "TensorSpec",
    "content_sha256",
    "dtype_code",
    "expected_tensors",
    "fp32_parameter_count",
    "is_time_path",
    "metadata_json",
]

FORMAT_NAME = "bimacosr-packed"
FORMAT_VERSION = "2"
READABLE_VERSIONS = ("1", "2")  # version 1: the content hash covers the tensors only
METADATA_KEYS = ("format", "format_version", "architecture", "binarization", "diffusion",
                 "time_folded_at", "provenance", "content_sha256")

# The metadata's JSON fields as the "Metadata" table gives them: name -> (kind, low, high,
# required); kind "int", "float", "bool", "object" (JSON object) or "ints" (a list of ints, each
# in [low, high]). load.py applies them and the table's cross-field rules.
ARCHITECTURE_FIELDS: dict[str, tuple] = {
    "widths": ("ints", 1, 4096, True),
    "res_blocks": ("int", 1, 16, True),
    "attn_levels": ("ints", 0, 5, True),
    "window": ("int", 1, 32, True),
    "head_dim": ("int", 1, 4096, True),
    "mlp_ratio": ("float", 0.0625, 16, True),
    "time_dim": ("int", 1, 4096, True),
    "in_channels": ("int", 51, 51, True),
    "out_channels": ("int", 48, 48, True),
    "residual": ("bool", None, None, True),
    "shortcuts": ("bool", None, None, False),
    "extra": ("object", None, None, True),
}
MAX_LEVELS = 6  # len(widths)
BINARIZATION_FIELDS: dict[str, tuple] = {
    "rank": ("int", 1, 4096, True),
    "smb": ("bool", None, None, True),
    "lrmb": ("bool", None, None, True),
    "shortcut": ("bool", None, None, False),
    "act_shift": ("bool", None, None, False),
    "svd_init": ("bool", None, None, False),
    "gain": ("bool", None, None, False),
    "lr_act_bases": ("int", 1, 2, False),
    "rprelu_slope": ("float", -100, 100, False),
    "seed": ("int", -(2**63), 2**64 - 1, False),
}
DIFFUSION_FIELDS: dict[str, tuple] = {
    "steps": ("int", 2, 1000, True),
    "power": ("float", 0.01, 10, True),
    "kappa": ("float", 0, 100, True),
    "sqrt_eta_start": ("float", 1e-6, 1, True),
    "sqrt_eta_end": ("float", 1e-6, 1, True),
}

# safetensors dtype code -> numpy dtype (little-endian), for the dtypes this format uses.
DTYPES = {
    "U64": np.dtype("<u8"),
    "F32": np.dtype("<f4"),
    "I32": np.dtype("<i4"),
    "F16": np.dtype("<f2"),
}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, malformed, or not this format."""


@dataclass(frozen=True)
class TensorSpec:
    dtype: str  # safetensors code, a key of DTYPES
    shape: tuple[int, ...]


def is_time_path(name: str) -> bool:
    """Whether a module or state-dict name belongs to the time path that folding removes."""
    return bool({"time_embed", "film"} & set(name.split(".")))


def expected_tensors(architecture: ModelConfig, binarization: dict) -> dict[str, TensorSpec]:
    """Every tensor name of a packed file for this architecture, with dtype and shape.

    ``binarization`` needs ``rank`` (int >= 1), ``smb`` and ``lrmb`` (bool); ``act_shift``
    (bool) is optional. The layers come from ``model.layout.DenoiserLayout`` (no torch).
    """
    rank, smb, lrmb = binarization["rank"], binarization["smb"], binarization["lrmb"]
    act_shift = binarization.get("act_shift", False)
    layout = DenoiserLayout(architecture)
    specs: dict[str, TensorSpec] = {}
    for layer in layout.binary_layers():
        prefix, cin, cout = layer.name, layer.cin, layer.cout
        cw = (cin + 63) // 64
        if layer.linear:
            bits_shape, extra = (cout, cw), ()
        else:
            bits_shape = (cout, layer.kernel, layer.kernel, cw)
            extra = ("rprelu.shift_in", "rprelu.slope", "rprelu.shift_out")
        specs[f"{prefix}.bits"] = TensorSpec("U64", bits_shape)
        specs.update({f"{prefix}.{v}": TensorSpec("F32", (cout,))
                      for v in ("beta", "bias", *extra)})
        if smb:  # n as in _MatrixBranches.decompose
            n = min(2 * max(cin, cout), cout * cin)
            specs[f"{prefix}.smb.index"] = TensorSpec("I32", (n,))
            specs[f"{prefix}.smb.value"] = TensorSpec("F16", (n,))
        if lrmb:
            r = min(rank, cin, cout)
            specs[f"{prefix}.lrmb.down"] = TensorSpec("F16", (r, cin))
            specs[f"{prefix}.lrmb.up"] = TensorSpec("F16", (cout, r))
        if act_shift:
            specs[f"{prefix}.act_shift"] = TensorSpec("F32", (cin,))
    for name, shape in layout.full_precision_tensors().items():
        specs[name] = TensorSpec("F32" if len(shape) == 1 else "F16", shape)
    return specs


def fp32_parameter_count(architecture: ModelConfig) -> int:
    """Parameters of the full-precision, time-folded network of this architecture: its FP32
    safetensors (``export_fp32``) holds this many float32 values."""
    layout = DenoiserLayout(architecture)
    count = sum(int(np.prod(shape)) for shape in layout.full_precision_tensors().values())
    return count + sum(int(np.prod(layer.weight_shape)) + layer.cout
                       for layer in layout.binary_layers())


def dtype_code(dtype: np.dtype) -> str:
    """The safetensors code of a numpy dtype of this format (ValueError for any other)."""
    for code, dt in DTYPES.items():
        if dtype == dt:
            return code
    raise ValueError(f"dtype {dtype} is not used by the packed format")


def metadata_json(metadata: dict[str, str]) -> str:
    """The metadata as the content hash reads it: every key but ``content_sha256``, one JSON
    object with sorted keys and no spaces."""
    return json.dumps({k: v for k, v in metadata.items() if k != "content_sha256"},
                      sort_keys=True, separators=(",", ":"))


def content_sha256(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None) -> str:
    """The content hash defined above (hex) of the tensors and the metadata (``None``: of the
    tensors alone, format version 1's hash)."""
    h = hashlib.sha256()
    if metadata is not None:
        h.update(metadata_json(metadata).encode() + b"\n")
    for name in sorted(tensors):
        a = tensors[name]
        code = dtype_code(a.dtype)
        shape = ",".join(str(d) for d in a.shape)
        h.update(f"{name}\n{code}\n{shape}\n".encode())
        h.update(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()
