"""Training checkpoints: state dicts as bf16 safetensors, sharded under 16 MiB.

A checkpoint ``<dir>/<stem>`` is one or more files ``<stem>-<i>-of-<n>.safetensors``; floating
tensors are stored as bfloat16 (integer buffers keep their dtype), and every shard carries the
stage configuration as JSON in its metadata under ``"config"``. Files are written to a
temporary name and renamed, so an interrupted save never leaves a half-written checkpoint.
Never pickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from ..atomic import atomic_write_bytes

__all__ = ["MAX_SHARD_BYTES", "load_weights", "save_weights", "weight_files"]

# Below the 16 MiB transfer limit with room for the header; the FP model (7.9 M bf16
# parameters, 15.1 MiB) fits one shard.
MAX_SHARD_BYTES = 16 * 1024 * 1024 - 256 * 1024


def weight_files(directory: Path, stem: str) -> list[Path]:
    return sorted(Path(directory).glob(f"{stem}-*-of-*.safetensors"))


def save_weights(state: dict[str, torch.Tensor], directory: Path, stem: str,
                 config: dict | None = None, dtype: torch.dtype = torch.bfloat16) -> list[Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).cpu().contiguous()
               for k, v in state.items()}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > MAX_SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    metadata = {"config": json.dumps(config or {}), "format": "bimacosr-train-weights"}
    old = set(weight_files(directory, stem))
    written = []
    for i, shard in enumerate(shards, 1):
        path = directory / f"{stem}-{i:02d}-of-{len(shards):02d}.safetensors"
        atomic_write_bytes(path, save(shard, metadata=metadata))
        written.append(path)
    for stale in old - set(written):
        stale.unlink()
    return written


def load_weights(directory: Path, stem: str, device: str | torch.device = "cpu"
                 ) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict in float32 for floating tensors, config) of checkpoint ``stem``."""
    files = weight_files(directory, stem)
    if not files:
        raise FileNotFoundError(f"no checkpoint {stem!r} in {directory}")
    state, config = {}, {}
    for path in files:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            config = json.loads((f.metadata() or {}).get("config", "{}"))
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                t = f.get_tensor(name)
                state[name] = t.float() if t.is_floating_point() else t
    return state, config
