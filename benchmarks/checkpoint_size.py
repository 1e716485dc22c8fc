"""Size of the packed checkpoint vs the FP32 safetensors of the same network.

    python -m benchmarks.checkpoint_size [--json]

Measures the shipped packed file (resources/models/bimacosr-x4.safetensors), or, when none
is shipped, a freshly exported default-architecture randomly initialised binarized model
(T = 4). The FP32 file is ``export_fp32`` of the same time-folded network (every layer dense
float32) written to a temporary folder; both sizes are file sizes in bytes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bimacosr_app.checkpoint import export_fp32, export_packed, load_packed
from bimacosr_app.engine import default_checkpoint_path
from bimacosr_app.model import Denoiser, DiffusionConfig, binarize


def measure() -> dict:
    shipped = default_checkpoint_path()
    with tempfile.TemporaryDirectory() as tmp:
        packed = shipped
        if not shipped.is_file():
            packed = Path(tmp) / "random-packed.safetensors"
            export_packed(binarize(Denoiser()), DiffusionConfig(steps=4), packed,
                          {"note": "random default-architecture model"})
        fp32 = Path(tmp) / "fp32.safetensors"
        export_fp32(load_packed(packed).to_model(), fp32)
        packed_bytes, fp32_bytes = packed.stat().st_size, fp32.stat().st_size
    return {"checkpoint": "shipped" if packed == shipped else "random default architecture",
            "packed_bytes": packed_bytes, "fp32_bytes": fp32_bytes,
            "ratio": fp32_bytes / packed_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    r = measure()
    if args.json:
        print(json.dumps(r))
        return
    print(f"checkpoint: {r['checkpoint']}")
    print(f"{'packed (bytes)':<18}{r['packed_bytes']:>14,}")
    print(f"{'FP32 (bytes)':<18}{r['fp32_bytes']:>14,}")
    print(f"{'ratio':<18}{r['ratio']:>13.2f}x")


if __name__ == "__main__":
    main()
