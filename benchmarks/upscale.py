"""Application benchmark: one photo from file to file through ``jobs.run_request``.

    python -m benchmarks.upscale [--json] [--backend auto|cpu-packed|reference|cuda]
                                 [--sizes 1,4,16] [--tile-budget MB]

For each OUTPUT size in megapixels (default 1, 4 and 16, i.e. square inputs of 0.0625, 0.25
and 1 megapixel) a fresh subprocess makes the input from a real validation photo (centre
square of the largest photo in ``shared/data/val``, Lanczos-resized to the input size, saved
as PNG), loads the backend, then times ``run_request`` end to end (read, tiles, model, stitch,
PNG encode, atomic write) to a PNG. Reported per size: seconds, seconds per output megapixel,
the tiles used, the resident memory after loading the backend (``base_rss_mb``) and the
process's peak resident memory (``peak_rss_mb``: ``VmHWM`` from /proc/self/status, falling
back to ``resource.getrusage``), which includes the interpreter, the model and, for the torch
backends, torch (``cpu-packed`` runs without it). One process per size keeps the peaks apart.

With ``--json`` the last line printed is ``{"rows": [...], "backend": ..., "threads": ...}``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _val_photo() -> Path:
    for folder in (ROOT / "shared/data/val", ROOT.parent / "shared/data/val"):
        photos = sorted(folder.glob("*.webp"), key=lambda p: p.stat().st_size)
        if photos:
            return photos[-1]
    raise SystemExit("no validation photos found in shared/data/val")


def _child(out_mp: float, backend_name: str, budget: float | None) -> dict:
    """Runs in a fresh process: make the input, load the backend, time one request."""
    from PIL import Image

    from bimacosr_app.engine import select_backend
    from bimacosr_app.jobs import UpscaleRequest, run_request

    side = round(math.sqrt(out_mp * 1e6) / 4)  # LR side
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "input.png"
        with Image.open(_val_photo()) as im:
            im = im.convert("RGB")
            s = min(im.size)
            left, top = (im.width - s) // 2, (im.height - s) // 2
            im.crop((left, top, left + s, top + s)).resize(
                (side, side), Image.Resampling.LANCZOS).save(src)
        backend = select_backend(backend_name)
        if backend.name == "cpu-packed":  # no torch in the process, as the app runs it
            from bimacosr_app.native import load_kernels

            threads = load_kernels().get_num_threads()
        else:
            import torch

            threads = torch.get_num_threads()
        base = _rss_mb()
        request = UpscaleRequest(src, output=Path(tmp) / "out", format="png",
                                 tile_budget_mb=budget)
        t0 = time.perf_counter()
        result = run_request(request, backend)
        seconds = time.perf_counter() - t0
        if result.status != "done":
            raise SystemExit(f"benchmark run failed: {result.error}")
        w, h = result.output_size
        return {
            "out_mp": round(w * h / 1e6, 3),
            "input": f"{side}x{side}",
            "output": f"{w}x{h}",
            "seconds": round(seconds, 2),
            "s_per_out_mp": round(seconds / (w * h / 1e6), 3),
            "tile": result.details["tiling"]["tile"],
            "tiles": result.details["tiling"]["tiles"],
            "base_rss_mb": round(base),
            "peak_rss_mb": round(_peak_rss_mb()),
            "backend": backend.name,
            "threads": threads,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.upscale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--backend", default="auto",
                        choices=("auto", "cpu-packed", "reference", "cuda"))
    parser.add_argument("--sizes", default="1,4,16", help="output megapixels, comma separated")
    parser.add_argument("--tile-budget", type=float, default=None, metavar="MB")
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        print(json.dumps(_child(args.child, args.backend, args.tile_budget)))
        return 0

    rows = []
    for size in (float(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, "-m", "benchmarks.upscale", "--child", str(size),
               "--backend", args.backend]
        if args.tile_budget is not None:
            cmd += ["--tile-budget", str(args.tile_budget)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))

    header = ("out MP", "input", "output", "seconds", "s/out MP", "tile", "tiles",
              "base RSS MB", "peak RSS MB")
    keys = ("out_mp", "input", "output", "seconds", "s_per_out_mp", "tile", "tiles",
            "base_rss_mb", "peak_rss_mb")
    table = [header] + [tuple(str(r[k]) for k in keys) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    backend = rows[0]["backend"] if rows else args.backend
    threads = rows[0]["threads"] if rows else None
    print(f"backend {backend}, {threads} threads")
    if args.json:
        print(json.dumps({"rows": rows, "backend": backend, "threads": threads}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
