"""``bimacosr info [--checkpoint PATH] [--json]``: what this installation can do.

Reports the checkpoint (format version, architecture, diffusion T, provenance, content hash,
file size and compression vs the FP32 network of the same architecture), the backends usable
here and what the others need (how to get it), the native kernels (CPU features, kernel
chosen, or why they are missing), the CUDA device, readable image formats, and the app and
torch versions. ``--json`` prints one JSON object with the keys ``app_version``,
``torch_version`` (null without torch), ``checkpoint``, ``compression_ratio``, ``backends``,
``unavailable`` (backend name -> what it needs), ``kernels``, ``cuda`` (the first visible
NVIDIA GPU found by the driver, or null) and ``formats``. Exits 1 when the checkpoint cannot be
loaded (the rest is still reported).

Imports neither torch nor Qt (``engine.probe`` answers for the torch backends), so it runs in
the app's own install and starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import __version__

__all__ = ["add_parser", "collect_info", "run"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("info", help="show the model, backends, kernels and formats",
                              description="Show the model, backends, kernels and formats.")
    p.add_argument("--checkpoint", type=Path, help="packed model file (default: the bundled one)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def _kernels() -> dict:
    try:
        from ..native import kernels_status
        return kernels_status()
    except Exception as exc:  # a missing or broken loader must not break `info`
        return {"available": False, "reason": f"kernel loader unavailable: {exc}"}


def collect_info(checkpoint: Path | None = None) -> dict:
    """Everything ``info`` reports, as one JSON-serializable dict."""
    from ..checkpoint import CheckpointError, fp32_parameter_count, load_packed
    from ..engine import (
        available_backends,
        cuda_status,
        default_checkpoint_path,
        registered_backends,
        unavailable_reason,
    )
    from ..image_io import readable_formats

    path = checkpoint or default_checkpoint_path()
    cuda = cuda_status()
    info: dict = {"app_version": __version__, "torch_version": cuda.torch_version}
    try:
        ckpt = load_packed(path)
    except CheckpointError as exc:
        info["checkpoint"] = {"path": str(path), "error": str(exc)}
        info["compression_ratio"] = None
    else:
        arch = ckpt.architecture
        fp32_bytes = 4 * fp32_parameter_count(arch)
        info["checkpoint"] = {
            "path": str(path),
            "file_size": ckpt.file_size,
            "format_version": ckpt.format_version,
            "content_sha256": ckpt.content_sha256,
            "architecture": arch.to_dict(),
            "binarization": ckpt.binarization,
            "diffusion_steps": ckpt.diffusion.steps,
            "time_folded_at": ckpt.time_folded_at,
            "required_multiple": arch.required_multiple,
            "fp32_bytes": fp32_bytes,
            "provenance": ckpt.provenance,
        }
        info["compression_ratio"] = fp32_bytes / ckpt.file_size
    info["backends"] = available_backends()
    info["unavailable"] = {name: unavailable_reason(name) for name in registered_backends()
                           if name not in info["backends"]}
    info["kernels"] = _kernels()
    info["cuda"] = cuda.device.to_dict() if cuda.device else None
    info["formats"] = readable_formats()
    return info


def _print_text(info: dict) -> None:
    ck = info["checkpoint"]
    torch = info["torch_version"]
    print(f"BiMaCoSR Upscaler {info['app_version']} "
          f"({'torch ' + torch if torch else 'without PyTorch'})")
    print(f"\nCheckpoint: {ck['path']}")
    if "error" in ck:
        print(f"  unusable: {ck['error']}")
    else:
        arch = ck["architecture"]
        print(f"  format version   {ck['format_version']}")
        print(f"  content sha256   {ck['content_sha256']}")
        print(f"  architecture     widths {arch['widths']}, {arch['res_blocks']} blocks/level, "
              f"attention at levels {arch['attn_levels']} (window {arch['window']}), "
              f"multiple {ck['required_multiple']} px")
        print(f"  diffusion        T = {ck['diffusion_steps']}, one step at t = "
              f"{ck['time_folded_at']} (folded)")
        print(f"  size             {ck['file_size']:,} bytes; FP32 of the same network "
              f"{ck['fp32_bytes']:,} bytes; {info['compression_ratio']:.1f}x smaller")
        for key, value in ck["provenance"].items():
            print(f"  {key:<16} {json.dumps(value) if isinstance(value, dict) else value}")
    print(f"\nBackends: {', '.join(info['backends']) or 'none'}")
    for name, needs in info["unavailable"].items():
        print(f"  {name} is not available: it needs {needs}")
    k = info["kernels"]
    if k.get("available"):
        print(f"Kernels: {k['kernel']} (of {', '.join(k['kernels'])}), {k['threads']} threads; "
              f"CPU features: {' '.join(k['cpu_features'])}")
    else:
        print(f"Kernels: compiled kernels not available ({k.get('reason')})")
    cuda = info["cuda"]
    print("CUDA: " + ("none" if cuda is None else
                      f"{cuda['name']}, {cuda['memory_bytes'] / 2**30:.1f} GiB, "
                      f"compute capability {cuda['capability']}"))
    print("Readable formats: " + ", ".join(info["formats"]))


def run(args: argparse.Namespace) -> int:
    info = collect_info(args.checkpoint)
    if args.json:
        print(json.dumps(info))
    else:
        _print_text(info)
    return 1 if "error" in info["checkpoint"] else 0
