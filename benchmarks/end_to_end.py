"""End-to-end benchmark: the packed CPU network against the same network in FP32 torch.

    python -m benchmarks.end_to_end [--json] [--size 256] [--threads N] [--kernel NAME]

Both variants run one call of ``model.pipeline.upscale_tile`` on a ``size x size`` LR input
(so the output is 4x that) with the default ``ModelConfig``, random weights (seed 0), the time
path folded at t = T-1 (as in deploy) and channels_last, under ``torch.inference_mode``:

* ``packed``: ``binarize(Denoiser(), **options)`` -> ``fold_time`` ->
  ``engine.cpu_packed.pack_model``, with the shipped checkpoint's layout options (branches,
  shortcut, activation thresholds: ``benchmarks.model_cost.shipped_structure``) and schedule;
* ``parent``: the same for the 1-bit student of the FP parent, the recipe of
  ``configs/binarize_parent.json`` (a shortcut around every 1-bit layer, thresholds and
  gains; κ = 0, so no noise is drawn);
* ``fp32``: the shipped architecture's ``Denoiser()`` before ``binarize()`` -> ``fold_time``
  -> channels_last.

Timing: one warm-up call, then the median of 3 timed calls; ratio = fp32 ms / packed ms. Both
use ``--threads`` threads (``torch.set_num_threads``, which the packed model hands to the
kernels' pool).

Peak memory: each variant runs in a fresh subprocess (``--variant``). After building the model
it collects garbage, returns freed heap to the OS (glibc ``malloc_trim``), resets the process's
RSS high-water mark (writing ``5`` to ``/proc/self/clear_refs``) and reports ``VmHWM`` from
``/proc/self/status`` after the timed calls: the peak resident memory of inference including
the resident model, interpreter and libraries, not of model construction (tracemalloc would
miss torch's and the kernels' native allocations). The table also shows ``VmRSS`` right after
the build (the resting footprint). Where the reset is not permitted the peak includes
construction, and the table says so.

With ``--json`` the last line printed is ``{"ms_packed", "ms_parent", "ms_fp32", "ratio",
"ratio_parent", "peak_rss_mb_packed", "peak_rss_mb_parent", "peak_rss_mb_fp32", "threads",
"kernel"}`` (``ratio_parent`` = fp32 ms / parent ms).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.kernels import cpu_model
from benchmarks.model_cost import shipped_structure
from bimacosr_app.checkpoint import load_packed
from bimacosr_app.engine.backends import default_checkpoint_path
from bimacosr_app.model import (
    Denoiser,
    DiffusionConfig,
    ModelConfig,
    ResShiftSchedule,
    binarize,
    fold_time,
)
from bimacosr_app.model.pipeline import upscale_tile
from bimacosr_app.native import kernels_status, load_kernels

VARIANTS = ("packed", "parent", "fp32")
PARENT_OPTIONS = {"act_shift": True, "gain": True, "shortcut": True}


def schedule_of(variant: str) -> ResShiftSchedule:
    """The shipped model's schedule, or the FP parent's (no input noise)."""
    if variant == "parent":
        return ResShiftSchedule(DiffusionConfig(steps=4, kappa=0.0))
    return ResShiftSchedule(load_packed(default_checkpoint_path()).diffusion)


def _status_kb(key: str) -> int | None:
    """A ``kB`` field of /proc/self/status (Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc only; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def build(variant: str, schedule: ResShiftSchedule) -> torch.nn.Module:
    torch.manual_seed(0)
    fp = Denoiser(ModelConfig()).eval()
    t = schedule.steps - 1
    if variant == "fp32":
        return fold_time(fp, t).to(memory_format=torch.channels_last).requires_grad_(False)
    from bimacosr_app.engine.cpu_packed import pack_model

    options = PARENT_OPTIONS if variant == "parent" else shipped_structure()
    binary = fold_time(binarize(copy.deepcopy(fp), **options), t)
    del fp
    return pack_model(binary)


def run_variant(variant: str, size: int, threads: int, kernel: str) -> dict:
    """Time one variant in this process; returns {"ms", "times_ms", "peak_rss_mb", ...}."""
    torch.set_num_threads(threads)
    bk = load_kernels()
    if bk is not None:
        bk.set_kernel(kernel)
    schedule = schedule_of(variant)
    model = build(variant, schedule)
    lr = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    gc.collect()
    _trim_heap()
    rss = _status_kb("VmRSS")
    hwm_reset = _reset_hwm()
    times = []
    with torch.inference_mode():
        upscale_tile(model, schedule, lr)  # warm-up
        for _ in range(3):
            t0 = time.perf_counter()
            upscale_tile(model, schedule, lr)
            times.append(1e3 * (time.perf_counter() - t0))
    hwm = _status_kb("VmHWM")
    return {
        "variant": variant,
        "ms": statistics.median(times),
        "times_ms": [round(t, 2) for t in times],
        "peak_rss_mb": None if hwm is None else hwm / 1024,
        "rss_mb_model": None if rss is None else rss / 1024,
        "hwm_reset": hwm_reset,
        "kernel": bk.kernel_name() if bk is not None and variant == "packed" else None,
    }


def spawn(variant: str, size: int, threads: int, kernel: str) -> dict:
    """Run one variant in a fresh interpreter (its own RSS high-water mark)."""
    cmd = [sys.executable, "-m", "benchmarks.end_to_end", "--variant", variant,
           "--size", str(size), "--threads", str(threads), "--kernel", kernel]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.end_to_end",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON (last line)")
    ap.add_argument("--size", type=int, default=256, help="LR side in pixels (default 256)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both variants (default: torch's default)")
    ap.add_argument("--kernel", default="auto",
                    help="packed kernel: auto, reference, avx2, avx512 or neon")
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # subprocess mode
    args = ap.parse_args(argv)
    threads = args.threads or torch.get_num_threads()

    if args.variant:
        print(json.dumps(run_variant(args.variant, args.size, threads, args.kernel)))
        return 0
    if load_kernels() is None:
        print(f"native kernels unavailable: {kernels_status()['reason']}", file=sys.stderr)
        return 2
    packed, parent, fp32 = (spawn(v, args.size, threads, args.kernel) for v in VARIANTS)
    ratio, ratio_parent = fp32["ms"] / packed["ms"], fp32["ms"] / parent["ms"]

    print(f"cpu={cpu_model()} torch={torch.__version__} threads={threads} "
          f"kernel={packed['kernel']} input={args.size}x{args.size} LR -> "
          f"{4 * args.size}x{4 * args.size} binarization={shipped_structure()}")
    print(f"{'variant':<10}{'median ms':>11}{'runs ms':>22}{'peak RSS MB':>13}"
          f"{'RSS after build MB':>20}")
    for r in (packed, parent, fp32):
        runs = ", ".join(f"{t:.0f}" for t in r["times_ms"])
        peak, rest = (("n/a" if v is None else f"{v:.0f}")
                      for v in (r["peak_rss_mb"], r["rss_mb_model"]))
        print(f"{r['variant']:<10}{r['ms']:>11.1f}{runs:>22}{peak:>13}{rest:>20}")
    print(f"ratio fp32/packed: {ratio:.2f}x, fp32/parent: {ratio_parent:.2f}x"
          + ("" if packed["hwm_reset"] else " (peak RSS includes model construction)"))
    if args.json:
        print(json.dumps({
            "ms_packed": round(packed["ms"], 2),
            "ms_parent": round(parent["ms"], 2),
            "ms_fp32": round(fp32["ms"], 2),
            "ratio": round(ratio, 3),
            "ratio_parent": round(ratio_parent, 3),
            "peak_rss_mb_packed": packed["peak_rss_mb"],
            "peak_rss_mb_parent": parent["peak_rss_mb"],
            "peak_rss_mb_fp32": fp32["peak_rss_mb"],
            "threads": threads,
            "kernel": packed["kernel"],
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
