"""CUDA backend speed: the shipped 1-bit model (fp16, densified) against the full-precision
network of the same architecture (fp16 and fp32), on one GPU.

    python -m benchmarks.cuda_backend [--json] [--size 256]

Median of 10 timed calls after 3 warm-ups of ``upscale`` on a size x size LR tile, timed
with CUDA synchronisation around each call (includes host<->device copies of the tile).
"""

from __future__ import annotations

import argparse
import json

import torch

from benchmarks.cuda_timing import cuda_median_ms
from bimacosr_app.engine import select_backend
from bimacosr_app.model import Denoiser, upscale_tile


def _median_ms(fn) -> float:
    return cuda_median_ms(fn, repeats=10, warmup=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    backend = select_backend("cuda")
    lr = torch.rand(1, 3, args.size, args.size)
    rows = {"binary_fp16": _median_ms(lambda: backend.upscale(lr))}
    fp = Denoiser(backend.checkpoint.architecture).eval()
    for dtype, key in ((torch.float16, "fp_fp16"), (torch.float32, "fp_fp32")):
        model = fp.to("cuda", dtype, memory_format=torch.channels_last)
        x = lr.to("cuda", dtype)

        def run(model=model, x=x):
            with torch.inference_mode():
                upscale_tile(model, backend.schedule, x).float().cpu()

        rows[key] = _median_ms(run)
    result = {"size": args.size, "device": torch.cuda.get_device_name(),
              **{f"ms_{k}": round(v, 2) for k, v in rows.items()},
              "ratio_vs_fp16": rows["fp_fp16"] / rows["binary_fp16"],
              "ratio_vs_fp32": rows["fp_fp32"] / rows["binary_fp16"]}
    print(f"{result['device']}, {args.size}x{args.size} LR -> {4 * args.size}x{4 * args.size}")
    for k, v in rows.items():
        print(f"  {k:<14}{v:>10.2f} ms")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
