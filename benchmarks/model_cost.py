"""Parameters and operations of the default model, FP vs BiMaCoSR, by the paper's rule.

    python -m benchmarks.model_cost [--json] [--size 64]

Counts at one LR input of size x size (default 64x64, the paper's 256x256 output), the
binarized network built with the shipped checkpoint's binarization options (branches,
shortcut, activation thresholds).
"""

from __future__ import annotations

import argparse
import json

from bimacosr_app.checkpoint import load_packed
from bimacosr_app.engine import default_checkpoint_path
from bimacosr_app.model import Denoiser, binarize, model_cost

STRUCTURE = ("rank", "smb", "lrmb", "shortcut", "act_shift")  # binarize() options of the layout


def shipped_structure() -> dict:
    """The ``binarize()`` options that shape the shipped checkpoint's network (branches,
    shortcut, activation thresholds), from its metadata."""
    binarization = load_packed(default_checkpoint_path()).binarization
    return {k: v for k, v in binarization.items() if k in STRUCTURE}


def measure(size: int, options: dict) -> dict:
    fp = model_cost(Denoiser(), size, size)
    binary = model_cost(binarize(Denoiser(), **options), size, size)
    return {
        "binarization": options,
        "params_fp": fp.params,
        "params_effective": binary.params_effective,
        "ops_fp": fp.macs,
        "ops_effective": binary.ops_effective,
        "param_ratio": fp.params / binary.params_effective,
        "op_ratio": fp.macs / binary.ops_effective,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--size", type=int, default=64, help="LR input side (default 64)")
    args = parser.parse_args()
    r = measure(args.size, shipped_structure())
    if args.json:
        print(json.dumps(r))
        return
    print(f"default model at {args.size}x{args.size} LR input (x4 output), "
          f"binarized as shipped: {r['binarization']}")
    print(f"{'':<22}{'full precision':>16}{'BiMaCoSR':>16}{'ratio':>8}")
    print(f"{'params (M)':<22}{r['params_fp'] / 1e6:>16.3f}{r['params_effective'] / 1e6:>16.3f}"
          f"{r['param_ratio']:>8.1f}")
    print(f"{'operations (GMAC)':<22}{r['ops_fp'] / 1e9:>16.3f}{r['ops_effective'] / 1e9:>16.3f}"
          f"{r['op_ratio']:>8.1f}")


if __name__ == "__main__":
    main()
