"""Micro-benchmark of the packed XNOR-popcount layers against torch FP32 on the same threads.

    python -m benchmarks.kernels [--json] [--threads N] [--kernel NAME] [--out FILE]

For each layer shape it reports the median time of the packed path (``pack_activations`` of the
float input, with a per-channel activation threshold when the shipped model has them, + the
binary kernel, since the engine must pack every binarized layer's input) and of
torch FP32 (``F.conv2d`` on channels_last tensors / ``F.linear``, ``torch.set_num_threads`` equal
to the kernels' thread count), and their ratio (FP32 time / packed time). With ``--json`` the
last line printed is ``{"rows": [...], "threads": N, "kernel": "avx2", ...}``; ``--out FILE``
also writes that JSON to FILE.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.model_cost import shipped_structure
from bimacosr_app.checkpoint.bitpack import pack_signs
from bimacosr_app.native import kernels_status, load_kernels

# (name, kind, channels in, channels out, height, width, stride); linear: tokens = height * width
LAYERS = [
    ("3x3 c64 64x64", "conv", 64, 64, 64, 64, 1),
    ("3x3 c128 64x64", "conv", 128, 128, 64, 64, 1),
    ("3x3 c256 64x64", "conv", 256, 256, 64, 64, 1),
    ("3x3 c64 256x256", "conv", 64, 64, 256, 256, 1),
    ("3x3 c128 64x64 s2", "conv", 128, 128, 64, 64, 2),
    ("1x1 c128 64x64", "gemm", 128, 128, 64, 64, 1),
    ("linear 256 x4096", "gemm", 256, 256, 1, 4096, 1),
]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_ms(fn: Callable[[], object], min_time: float, max_reps: int = 200) -> float:
    fn()  # warm-up (thread pool start, caches, oneDNN primitive creation)
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def bench_layer(bk, layer, rng: np.random.Generator, min_time: float, act_shift: bool) -> dict:
    name, kind, cin, cout, h, w, stride = layer
    shift = rng.standard_normal(cin).astype(np.float32) if act_shift else None
    x_nchw = torch.from_numpy(rng.standard_normal((1, cin, h, w)).astype(np.float32))
    x_cl = x_nchw.contiguous(memory_format=torch.channels_last)
    x_nhwc = x_cl.permute(0, 2, 3, 1)  # C-contiguous NHWC view, passed without a copy
    bias = torch.from_numpy(rng.standard_normal(cout).astype(np.float32))
    beta = rng.uniform(0.01, 1.0, cout).astype(np.float32)
    bias_np = bias.numpy()
    if kind == "conv":
        weight = torch.from_numpy(rng.standard_normal((cout, cin, 3, 3)).astype(np.float32))
        weight = weight.contiguous(memory_format=torch.channels_last)
        wbits = pack_signs(weight.permute(0, 2, 3, 1).numpy())

        def packed():
            bits, alpha = bk.pack_activations(x_nhwc, shift=shift)
            return bk.binary_conv3x3(bits, alpha, wbits, cin, beta, bias_np, stride)

        def fp32():
            return F.conv2d(x_cl, weight, bias, stride=stride, padding=1)

    elif name.startswith("1x1"):
        weight = torch.from_numpy(rng.standard_normal((cout, cin, 1, 1)).astype(np.float32))
        weight = weight.contiguous(memory_format=torch.channels_last)
        wbits = pack_signs(weight.reshape(cout, cin).numpy())

        def packed():
            bits, alpha = bk.pack_activations(x_nhwc, shift=shift)
            return bk.binary_gemm(
                bits.reshape(-1, bits.shape[-1]), alpha.reshape(-1), wbits, cin, beta, bias_np
            )

        def fp32():
            return F.conv2d(x_cl, weight, bias)

    else:  # linear over h * w tokens
        tokens = x_nhwc.reshape(h * w, cin)
        weight = torch.from_numpy(rng.standard_normal((cout, cin)).astype(np.float32))
        wbits = pack_signs(weight.numpy())
        tokens4 = tokens.reshape(1, 1, h * w, cin)

        def packed():
            bits, alpha = bk.pack_activations(tokens4, shift=shift)
            return bk.binary_gemm(
                bits.reshape(-1, bits.shape[-1]), alpha.reshape(-1), wbits, cin, beta, bias_np
            )

        def fp32():
            return F.linear(tokens, weight, bias)

    with torch.inference_mode():
        ms_fp32 = median_ms(fp32, min_time)
        ms_packed = median_ms(packed, min_time)
    return {
        "layer": name,
        "ms_packed": round(ms_packed, 4),
        "ms_fp32": round(ms_fp32, 4),
        "ratio": round(ms_fp32 / ms_packed, 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.kernels", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--json", action="store_true", help="print the results as JSON (last line)")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both sides (default: the kernels' default)",
    )
    ap.add_argument(
        "--kernel", default="auto", help="kernel to time: auto, reference, avx2, avx512 or neon"
    )
    ap.add_argument(
        "--min-time",
        type=float,
        default=0.5,
        help="seconds of timed runs per measurement (at least 5 runs)",
    )
    ap.add_argument(
        "--layers", default="", help="comma-separated substrings: time only matching layers"
    )
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)

    bk = load_kernels()
    if bk is None:
        print(f"native kernels unavailable: {kernels_status()['reason']}", file=sys.stderr)
        return 2
    try:
        bk.set_kernel(args.kernel)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    threads = args.threads or bk.get_num_threads()
    bk.set_num_threads(threads)
    torch.set_num_threads(threads)

    layers = [
        layer
        for layer in LAYERS
        if not args.layers or any(s.strip() in layer[0] for s in args.layers.split(","))
    ]
    rng = np.random.default_rng(0)
    act_shift = shipped_structure().get("act_shift", False)
    rows = [bench_layer(bk, layer, rng, args.min_time, act_shift) for layer in layers]
    result = {
        "rows": rows,
        "threads": threads,
        "kernel": bk.kernel_name(),
        "act_shift": act_shift,
        "cpu": cpu_model(),
        "cpu_features": list(bk.cpu_features()),
        "torch": torch.__version__,
    }

    print(f"kernel={result['kernel']} threads={threads} cpu={result['cpu']}", end="")
    print(f" torch={torch.__version__} thresholds={act_shift}")
    print(f"{'layer':<22}{'packed ms':>11}{'fp32 ms':>11}{'ratio':>9}")
    for r in rows:
        print(f"{r['layer']:<22}{r['ms_packed']:>11.3f}{r['ms_fp32']:>11.3f}{r['ratio']:>8.2f}x")
    text = json.dumps(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.json:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
