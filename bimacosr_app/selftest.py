"""``bimacosr --self-test``: prove that this installation really upscales, offline.

Loads the bundled model, upscales a small bundled photo-like image (32x32 -> 128x128) with
every backend available here (``cpu-packed`` where the native kernels load, ``reference``
where torch is installed, ``cuda`` where CUDA works; the others are listed as skipped, with
what they need) and compares each output with a stored golden result. Used by the frozen
bundle's smoke test (packaging/smoke_test.py) and by the test suite.

The data is shipped with the model (``resources/selftest/`` of the source tree, package data
of a wheel, ``resources/selftest/`` of a PyInstaller bundle: :mod:`bimacosr_app.bundled`). It
holds ``input.png``, ``output.npz`` (the
golden output, float16 (3, 128, 128) in [0, 1]) and ``golden.json``, which records the
content SHA-256 of the model the golden was made with (``model_sha256``), the seed, the
backend that made it and the tolerance. A golden made for another model is never compared:
the self-test fails with "golden was made for model X, bundled model is Y". After replacing
the shipped model, regenerate the golden from it::

    python scripts/make_selftest_golden.py        # or: python -m bimacosr_app.selftest --regenerate

Tolerance. The binarized network is chaotic (tests/test_cpu_packed.py): when two backends (or
two CPUs, or two BLAS builds) sum in another order and one activation within ~1e-8 of zero
lands on the other side of sign(), the output changes by up to ~0.7 in places (mean ~0.05-0.1
over the tile), although both results are correct. The pass criterion therefore compares the
outputs averaged over 8x8 output pixels (half the input resolution), where that chaos mostly
cancels but a wrong or broken model does not: measured on the first trained model, another
backend with sign flips gives a mean |diff| of 0.008 at 1/8 resolution, another noise seed
0.016, another model 0.086, so the bound is ``MEAN_ABS_TOL = 0.03``. Later models were calmer:
cpu-packed against the reference-made golden differs by at most 0.0004 (8bda046d) and 0.0002
(0a151411; mean 0.0001) at full resolution; be4db9c2 (no shortcut) max 0.038, mean 0.0026,
and 0.0009 at 1/8; 5b793fba and 29986fc3 (a shortcut around every 1-bit layer) max 0.0002,
the golden's float16 rounding; the shipped 2a0bbeb4 (the same layout) max 0.062, mean 0.003,
and 0.0008 at 1/8 (sign flips). Full-resolution max and mean |diff| are reported too (0
when the backend reproduces the golden bit for bit). Every output must also have the golden's
shape, be finite and lie in [0, 1].
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bundled import bundled_path

__all__ = [
    "GOLDEN_FILE",
    "MEAN_ABS_TOL",
    "POOL",
    "BackendResult",
    "SelfTestReport",
    "default_data_dir",
    "main",
    "make_golden",
    "run_self_test",
]

DATA_RELPATH = Path("selftest")  #: below resources/ (bimacosr_app.bundled)
GOLDEN_FILE = "golden.json"
INPUT_FILE = "input.png"
OUTPUT_FILE = "output.npz"
INPUT_SIDE = 32
FORMAT_VERSION = 1
POOL = 8  #: outputs are compared after averaging POOL x POOL output pixels
MEAN_ABS_TOL = 0.03  #: bound on the mean |diff| of the pooled outputs
REGENERATE_HINT = "regenerate it with: python scripts/make_selftest_golden.py"


def default_data_dir() -> Path:
    """The shipped self-test data (:func:`bimacosr_app.bundled.bundled_path`)."""
    return bundled_path(DATA_RELPATH)


@dataclass
class BackendResult:
    name: str
    ok: bool
    seconds: float = 0.0
    max_abs: float = float("nan")
    mean_abs: float = float("nan")
    pooled_mean_abs: float = float("nan")
    reason: str = ""


@dataclass
class SelfTestReport:
    ok: bool
    reason: str = ""
    model_path: str = ""
    model_sha256: str = ""
    golden_sha256: str = ""
    results: list[BackendResult] = field(default_factory=list)
    seconds: float = 0.0


def _synthetic_input(side: int = INPUT_SIDE) -> np.ndarray:
    """A deterministic photo-like (side, side, 3) uint8 image: smooth colour gradients, a hard
    edged patch, a thin diagonal line and fine noise."""
    rng = np.random.default_rng(20261126)
    y, x = np.mgrid[0:side, 0:side] / side
    img = np.stack([0.5 + 0.4 * np.sin(6 * x + 2 * y),
                    0.5 + 0.4 * np.cos(5 * y - 3 * x * y),
                    (x + y) / 2], axis=-1)
    a, b = side // 3, 2 * side // 3
    img[a:b, side // 6:side // 2] = (0.9, 0.2, 0.1)
    idx = np.arange(side)
    img[idx, (idx * 3 // 4 + side // 4) % side] = (0.95, 0.95, 0.9)
    img += rng.normal(0.0, 0.03, img.shape)
    return np.round(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def _load_input(path: Path) -> np.ndarray:
    """The input image as (1,3,h,w) float32 in [0, 1], read like any user image."""
    from .image_io import read_image

    rgb = read_image(path).rgb  # (h, w, 3)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


def _compare(out: np.ndarray, golden: np.ndarray, tol: float, pool: int) -> tuple[dict, str]:
    """Metrics of ``out`` (3,H,W) against ``golden``, and why it fails ("" when it passes)."""
    if out.shape != golden.shape:
        return {}, f"output shape {out.shape} differs from the golden's {golden.shape}"
    if not np.isfinite(out).all():
        return {}, "output has NaN or infinite values"
    if out.min() < 0.0 or out.max() > 1.0:
        return {}, f"output outside [0, 1] ({out.min():.3g} .. {out.max():.3g})"
    diff = np.abs(out.astype(np.float64) - golden.astype(np.float64))
    c, h, w = out.shape
    hp, wp = h // pool, w // pool

    def pooled(a: np.ndarray) -> np.ndarray:
        a = a[:, :hp * pool, :wp * pool].astype(np.float64)
        return a.reshape(c, hp, pool, wp, pool).mean(axis=(2, 4))

    pooled_mean = float(np.abs(pooled(out) - pooled(golden)).mean())
    metrics = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
               "pooled_mean_abs": pooled_mean}
    if pooled_mean > tol:
        return metrics, (f"mean |diff| from the golden at 1/{pool} resolution is "
                         f"{pooled_mean:.4f} > {tol}")
    return metrics, ""


def run_self_test(checkpoint: str | Path | None = None, data_dir: str | Path | None = None,
                  backends: list[str] | None = None,
                  log: Callable[[str], None] | None = None) -> SelfTestReport:
    """Run the self-test; never raises for a failure, returns a report with ``ok`` and
    ``reason``. ``checkpoint`` defaults to the bundled model, ``data_dir`` to
    :func:`default_data_dir`, ``backends`` to every backend available here."""
    log = log or (lambda _line: None)
    start = time.perf_counter()
    report = SelfTestReport(ok=False)

    def fail(reason: str) -> SelfTestReport:
        report.ok, report.reason = False, reason
        report.seconds = time.perf_counter() - start
        return report

    from .image_io import ImageIOError

    data = Path(data_dir) if data_dir is not None else default_data_dir()
    golden_path = data / GOLDEN_FILE
    try:
        meta = json.loads(golden_path.read_text(encoding="utf-8"))
        golden = np.load(data / meta.get("output", OUTPUT_FILE))["output"].astype(np.float32)
        lr = _load_input(data / meta.get("input", INPUT_FILE))
    except (OSError, ValueError, KeyError, ImageIOError) as exc:
        return fail(f"self-test data unusable in {data}: {exc}")

    from .checkpoint import CheckpointError, load_packed
    from .engine import (
        available_backends,
        default_checkpoint_path,
        registered_backends,
        select_backend,
        unavailable_reason,
    )

    model_path = Path(checkpoint) if checkpoint is not None else default_checkpoint_path()
    report.model_path = str(model_path)
    report.golden_sha256 = str(meta.get("model_sha256", ""))
    try:
        ckpt = load_packed(model_path)
    except (CheckpointError, OSError) as exc:
        return fail(f"model {model_path} cannot be loaded: {exc}")
    report.model_sha256 = ckpt.content_sha256
    log(f"model   {model_path}")
    log(f"        sha256 {ckpt.content_sha256}")
    if report.golden_sha256 != ckpt.content_sha256:
        return fail(f"golden was made for model {report.golden_sha256 or '(none recorded)'}, "
                    f"bundled model is {ckpt.content_sha256} ({golden_path}); "
                    f"{REGENERATE_HINT}")
    seed = int(meta.get("seed", 0))
    tol = float(meta.get("tolerance", {}).get("pooled_mean_abs", MEAN_ABS_TOL))
    pool = int(meta.get("tolerance", {}).get("pool", POOL))
    log(f"golden  {golden_path} ({meta.get('backend')}, seed {seed}, "
        f"{lr.shape[3]}x{lr.shape[2]} -> {golden.shape[2]}x{golden.shape[1]})")

    names = backends if backends is not None else available_backends()
    if backends is None:
        for name in registered_backends():
            if name not in names:
                log(f"{name:<12} skip   needs {unavailable_reason(name)}")
    if not names:
        return fail("no backend is available")
    for name in names:
        t0 = time.perf_counter()
        try:
            engine = select_backend(name, ckpt)
            out = engine.upscale(lr, 0, 0, seed=seed)[0]
        except Exception as exc:  # any failure of a backend is a failed self-test
            result = BackendResult(name, False, time.perf_counter() - t0,
                                   reason=f"{type(exc).__name__}: {exc}")
        else:
            metrics, why = _compare(out, golden, tol, pool)
            result = BackendResult(name, not why, time.perf_counter() - t0, reason=why,
                                   **metrics)
        report.results.append(result)
        status = "ok  " if result.ok else "FAIL"
        line = f"{name:<12} {status} {result.seconds:6.2f} s"
        if not np.isnan(result.max_abs):
            line += (f"   |diff| max {result.max_abs:.4f} mean {result.mean_abs:.4f}, "
                     f"at 1/{pool}: {result.pooled_mean_abs:.4f} (limit {tol})")
        log(line + (f"   {result.reason}" if result.reason else ""))
    failed = [r for r in report.results if not r.ok]
    if failed:
        return fail("; ".join(f"{r.name}: {r.reason}" for r in failed))
    report.ok = True
    report.seconds = time.perf_counter() - start
    return report


def self_test_main() -> int:
    """``bimacosr --self-test``: print the report; 0 when it passes, 1 with a reason."""
    print("BiMaCoSR Upscaler self-test", flush=True)
    report = run_self_test(log=lambda line: print("  " + line, flush=True))
    if report.ok:
        print(f"self-test passed: {len(report.results)} backend(s) "
              f"({', '.join(r.name for r in report.results)}) in {report.seconds:.1f} s",
              flush=True)
        return 0
    print(f"self-test FAILED: {report.reason}", file=sys.stderr, flush=True)
    return 1


def make_golden(checkpoint: str | Path | None = None, data_dir: str | Path | None = None,
                backend: str = "reference", seed: int = 0) -> dict:
    """Write ``output.npz`` and ``golden.json`` into ``data_dir`` from ``checkpoint`` (default:
    the bundled model) with ``backend``; ``input.png`` is created only when missing. Returns
    the metadata written."""
    from PIL import Image

    from . import __version__
    from .checkpoint import load_packed
    from .engine import default_checkpoint_path, select_backend

    data = Path(data_dir) if data_dir is not None else default_data_dir()
    data.mkdir(parents=True, exist_ok=True)
    if not (data / INPUT_FILE).is_file():
        Image.fromarray(_synthetic_input()).save(data / INPUT_FILE)
    model_path = Path(checkpoint) if checkpoint is not None else default_checkpoint_path()
    ckpt = load_packed(model_path)
    out = select_backend(backend, ckpt).upscale(_load_input(data / INPUT_FILE), 0, 0, seed=seed)
    np.savez_compressed(data / OUTPUT_FILE, output=out[0].astype(np.float16))

    torch = sys.modules.get("torch")  # loaded by a torch backend; None for cpu-packed
    meta = {
        "format": FORMAT_VERSION,
        "model_sha256": ckpt.content_sha256,
        "model_file": model_path.name,
        "input": INPUT_FILE,
        "output": OUTPUT_FILE,
        "seed": seed,
        "backend": backend,
        "tolerance": {"pool": POOL, "pooled_mean_abs": MEAN_ABS_TOL},
        "made_with": {"app": __version__, "torch": getattr(torch, "__version__", None)},
    }
    (data / GOLDEN_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def main(argv: list[str] | None = None) -> int:
    """``python -m bimacosr_app.selftest [--regenerate] [--checkpoint PATH] [--data DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m bimacosr_app.selftest",
                                     description="Run the self-test, or regenerate its golden.")
    parser.add_argument("--regenerate", action="store_true",
                        help="write the golden output for the model (default: the bundled one)")
    parser.add_argument("--checkpoint", type=Path, help="packed model file")
    parser.add_argument("--data", type=Path, help="self-test folder (default: resources/"
                        "selftest in the source tree)")
    args = parser.parse_args(argv)
    if args.regenerate:
        meta = make_golden(args.checkpoint, args.data)
        print(f"golden written to {args.data or default_data_dir()} for model "
              f"{meta['model_sha256']}")
        return 0
    report = run_self_test(args.checkpoint, args.data, log=lambda line: print("  " + line))
    print("self-test passed" if report.ok else f"self-test FAILED: {report.reason}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
