"""End-to-end benchmark: the packed CPU network on the native runtime against the
torch-assisted packed network it replaced and the same network in FP32 torch.

    python -m benchmarks.end_to_end [--json] [--size 256] [--threads N] [--kernel NAME]
                                    [--recipe binarize_parent]

Every variant runs one 4x upscale of a ``size x size`` LR input (so the output is 4x that)
with the default ``ModelConfig``, random weights (seed 0) and the time path folded at t = T-1
(as in deploy):

* ``native``: the 1-bit network with the shipped checkpoint's layout options (branches,
  shortcut, activation thresholds: ``benchmarks.model_cost.shipped_structure``) and schedule,
  exported by ``checkpoint.export_packed`` and run by ``runtime.PackedNetwork.upscale`` (NumPy
  and the native kernels: the ``cpu-packed`` backend, in a process that never imports torch);
* ``native-parent``: the same for the 1-bit student of an FP parent, built as the binarize
  config ``--recipe`` (default ``binarize_parent``, of ``bimacosr_app/training/configs/``)
  builds it (its ``model`` and ``binarize`` options: SMB, LRMB, a full-precision shortcut
  around every 1-bit layer, thresholds and gains; its ``diffusion``: kappa = 0, so no noise is
  drawn);
* ``packed`` and ``parent``: the same two networks on the torch-assisted packed path the app
  ran before the native runtime (``benchmarks/torch_packed.py``: the binarized layers on the
  kernels, everything else torch), through ``model.pipeline.upscale_tile``, channels_last,
  under ``torch.inference_mode``;
* ``fp32``: the shipped architecture's ``Denoiser()`` before ``binarize()`` -> ``fold_time``
  -> channels_last, through ``upscale_tile``.

Timing: one warm-up call, then the median of 3 timed calls; ratio = fp32 ms / native ms. Every
variant uses ``--threads`` threads (``torch.set_num_threads``, which the torch-assisted packed
model hands to the kernels' pool; the native runtime sets the kernels' pool itself).

Peak memory: each variant runs in a fresh subprocess (``--variant``). After building the model
it collects garbage, returns freed heap to the OS (glibc ``malloc_trim``), resets the process's
RSS high-water mark (writing ``5`` to ``/proc/self/clear_refs``) and reports ``VmHWM`` from
``/proc/self/status`` after the timed calls: the peak resident memory of inference including
the resident model, interpreter and libraries, not of model construction (tracemalloc would
miss the native allocations). The table also shows ``VmRSS`` right after the build (the
resting footprint). Where the reset is not permitted the peak includes construction, and the
table says so.

With ``--json`` the last line printed is ``{"ms_native", "ms_native_parent", "ms_packed",
"ms_parent", "ms_fp32", "ratio", "ratio_parent", "ratio_packed", "speedup_vs_packed",
"peak_rss_mb_native", "peak_rss_mb_native_parent", "peak_rss_mb_packed", "peak_rss_mb_parent",
"peak_rss_mb_fp32", "threads", "kernel", "recipe"}`` (``ratio`` = fp32 ms / native ms,
``ratio_parent`` = fp32 ms / native-parent ms, ``ratio_packed`` = fp32 ms / packed ms,
``speedup_vs_packed`` = packed ms / native ms).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bimacosr_app.native import kernels_status, load_kernels

VARIANTS = ("native", "native-parent", "packed", "parent", "fp32")
CONFIGS = Path(__file__).resolve().parents[1] / "bimacosr_app" / "training" / "configs"


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


def _is_parent(variant: str) -> bool:
    return variant in ("parent", "native-parent")


def binary_model(variant: str, recipe: str):
    """The random binarized Denoiser of a packed variant (the parent variants: as the binarize
    config ``recipe`` builds it), and its diffusion settings."""
    import torch

    from benchmarks.model_cost import shipped_structure
    from bimacosr_app.checkpoint import load_packed
    from bimacosr_app.engine import default_checkpoint_path
    from bimacosr_app.model import Denoiser, DiffusionConfig, ModelConfig, binarize

    torch.manual_seed(0)
    if _is_parent(variant):
        config = json.loads((CONFIGS / f"{recipe}.json").read_text())
        model = binarize(Denoiser(ModelConfig.from_dict(config["model"])), **config["binarize"])
        return model.eval(), DiffusionConfig(**config["diffusion"])
    model = binarize(Denoiser(), **shipped_structure())
    return model.eval(), load_packed(default_checkpoint_path()).diffusion


def export(variant: str, folder: Path, recipe: str) -> Path:
    """The packed file of a native variant (written by the parent process, which has torch)."""
    from bimacosr_app.checkpoint import export_packed

    model, diffusion = binary_model(variant, recipe)
    path = folder / f"{variant}.safetensors"
    export_packed(model, diffusion, path, {"benchmark": "end_to_end", "variant": variant})
    return path


def build(variant: str, checkpoint: Path | None, recipe: str):
    """``run(lr01)``: one upscale of a (1,3,h,w) float32 array by the variant's network."""
    if variant.startswith("native"):
        from bimacosr_app.checkpoint import load_packed
        from bimacosr_app.runtime import PackedNetwork

        network = PackedNetwork(load_packed(checkpoint))
        return network.upscale
    import torch

    from bimacosr_app.model import Denoiser, ResShiftSchedule, fold_time
    from bimacosr_app.model.pipeline import upscale_tile

    if variant == "fp32":
        from bimacosr_app.checkpoint import load_packed
        from bimacosr_app.engine import default_checkpoint_path

        torch.manual_seed(0)
        schedule = ResShiftSchedule(load_packed(default_checkpoint_path()).diffusion)
        model = fold_time(Denoiser().eval(), schedule.steps - 1)
        model = model.to(memory_format=torch.channels_last).requires_grad_(False)
    else:
        from benchmarks.torch_packed import pack_model

        binary, diffusion = binary_model(variant, recipe)
        schedule = ResShiftSchedule(diffusion)
        model = pack_model(fold_time(binary, schedule.steps - 1))

    def run(lr01: np.ndarray):
        with torch.inference_mode():
            return upscale_tile(model, schedule, torch.from_numpy(lr01))
    return run


def run_variant(variant: str, size: int, threads: int, kernel: str,
                checkpoint: Path | None, recipe: str) -> dict:
    """Time one variant in this process; returns {"ms", "times_ms", "peak_rss_mb", ...}."""
    bk = load_kernels()
    if variant.startswith("native"):
        bk.set_num_threads(threads)
    else:
        import torch

        torch.set_num_threads(threads)
    if bk is not None:
        bk.set_kernel(kernel)
    run = build(variant, checkpoint, recipe)
    lr = np.random.default_rng(1).random((1, 3, size, size), dtype=np.float32)
    gc.collect()
    _trim_heap()
    rss = _status_kb("VmRSS")
    hwm_reset = _reset_hwm()
    times = []
    run(lr)  # warm-up
    for _ in range(3):
        t0 = time.perf_counter()
        run(lr)
        times.append(1e3 * (time.perf_counter() - t0))
    hwm = _status_kb("VmHWM")
    return {
        "variant": variant,
        "ms": statistics.median(times),
        "times_ms": [round(t, 2) for t in times],
        "peak_rss_mb": None if hwm is None else hwm / 1024,
        "rss_mb_model": None if rss is None else rss / 1024,
        "hwm_reset": hwm_reset,
        "kernel": bk.kernel_name() if bk is not None and variant != "fp32" else None,
        "torch_loaded": "torch" in sys.modules,
    }


def spawn(variant: str, size: int, threads: int, kernel: str, checkpoint: Path | None,
          recipe: str) -> dict:
    """Run one variant in a fresh interpreter (its own RSS high-water mark)."""
    cmd = [sys.executable, "-m", "benchmarks.end_to_end", "--variant", variant,
           "--size", str(size), "--threads", str(threads), "--kernel", kernel,
           "--recipe", recipe]
    if checkpoint is not None:
        cmd += ["--checkpoint", str(checkpoint)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.end_to_end",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON (last line)")
    ap.add_argument("--size", type=int, default=256, help="LR side in pixels (default 256)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for every variant (default: the kernels' default, the cores)")
    ap.add_argument("--kernel", default="auto",
                    help="packed kernel: auto, reference, avx2, avx512 or neon")
    ap.add_argument("--recipe", default="binarize_parent",
                    help="binarize config (bimacosr_app/training/configs/, without .json) whose "
                         "student the parent variants build (default: binarize_parent)")
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # subprocess mode
    ap.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)  # native variants' file
    args = ap.parse_args(argv)
    recipe = CONFIGS / f"{args.recipe}.json"
    if not recipe.is_file() or "binarize" not in json.loads(recipe.read_text()):
        ap.error(f"{args.recipe} is not a binarize config of {CONFIGS}")
    bk = load_kernels()
    if bk is None:
        print(f"native kernels unavailable: {kernels_status()['reason']}", file=sys.stderr)
        return 2
    threads = args.threads or bk.get_num_threads()

    if args.variant:
        print(json.dumps(run_variant(args.variant, args.size, threads, args.kernel,
                                     args.checkpoint, args.recipe)))
        return 0
    import torch

    from benchmarks.kernels import cpu_model
    from benchmarks.model_cost import shipped_structure

    with tempfile.TemporaryDirectory() as tmp:
        files = {v: export(v, Path(tmp), args.recipe) for v in VARIANTS if v.startswith("native")}
        results = {v: spawn(v, args.size, threads, args.kernel, files.get(v), args.recipe)
                   for v in VARIANTS}
    ms = {v: r["ms"] for v, r in results.items()}
    print(f"cpu={cpu_model()} torch={torch.__version__} threads={threads} "
          f"kernel={results['native']['kernel']} input={args.size}x{args.size} LR -> "
          f"{4 * args.size}x{4 * args.size} binarization={shipped_structure()} "
          f"parent recipe={args.recipe}")
    print(f"{'variant':<15}{'median ms':>11}{'runs ms':>22}{'peak RSS MB':>13}"
          f"{'RSS after build MB':>20}{'torch':>7}")
    for r in results.values():
        runs = ", ".join(f"{t:.0f}" for t in r["times_ms"])
        peak, rest = (("n/a" if v is None else f"{v:.0f}")
                      for v in (r["peak_rss_mb"], r["rss_mb_model"]))
        print(f"{r['variant']:<15}{r['ms']:>11.1f}{runs:>22}{peak:>13}{rest:>20}"
              f"{'yes' if r['torch_loaded'] else 'no':>7}")
    ratios = {
        "ratio": ms["fp32"] / ms["native"],
        "ratio_parent": ms["fp32"] / ms["native-parent"],
        "ratio_packed": ms["fp32"] / ms["packed"],
        "speedup_vs_packed": ms["packed"] / ms["native"],
    }
    print(f"fp32/native: {ratios['ratio']:.2f}x, fp32/native-parent: {ratios['ratio_parent']:.2f}x,"
          f" fp32/packed: {ratios['ratio_packed']:.2f}x, packed/native: "
          f"{ratios['speedup_vs_packed']:.2f}x"
          + ("" if results["native"]["hwm_reset"] else " (peak RSS includes model construction)"))
    if args.json:
        print(json.dumps({
            **{f"ms_{v.replace('-', '_')}": round(m, 2) for v, m in ms.items()},
            **{k: round(v, 3) for k, v in ratios.items()},
            **{f"peak_rss_mb_{v.replace('-', '_')}": r["peak_rss_mb"]
               for v, r in results.items()},
            "threads": threads,
            "kernel": results["native"]["kernel"],
            "recipe": args.recipe,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
