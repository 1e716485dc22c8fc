"""Does the app's own install upscale like the torch reference? Whole val photos, files to files.

    python -m benchmarks.reference_parity inputs LR_DIR [--val PHOTO_DIR]
    python -m benchmarks.reference_parity floor LR_DIR OUT_DIR --scale 4 [--nudge 1]
    python -m benchmarks.reference_parity compare REF_DIR CANDIDATE_DIR [--floor FLOOR_DIR ...]

``inputs`` writes one LR input per validation photo (``../shared/data/val``, box-downscaled 4x,
8-bit PNG), so that every x4 output has the photo's size. Then the outputs are made by the
command line as a user runs it: ``bimacosr upscale LR_DIR -o DIR --scale S --format png``, once
in the base install (``pip install .``: cpu-packed, no torch) and once with ``--backend
reference`` where torch is installed (the tests' dev install). ``floor`` (torch needed) makes
the model's rounding floor for the same files: the same CLI batch path on the reference backend
with every tile's input moved by a seeded uniform 1e-6 (docs/ARCHITECTURE.md, "Sign
sensitivity"). ``compare`` prints, per file, max and mean |CANDIDATE - REF| in 1/255 and the
floor's (|FLOOR - REF|, the largest over the floor folders given), and checks the bounds the
tests use: max <= max(1/255, 1.5 x floor max) and mean <= max(0.05/255, 1.5 x floor mean).
With ``--json`` the last line is ``{"rows": [...], "ok": bool}``; exit status 1 when a file is
outside its bound or missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

VAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "val"  # ../shared/data/val


def make_inputs(lr_dir: Path, val: Path = VAL) -> list[Path]:
    lr_dir.mkdir(parents=True, exist_ok=True)
    written = []
    photos = sorted(p for p in val.iterdir() if p.suffix.lower() in (".webp", ".png", ".jpg"))
    for photo in photos:
        with Image.open(photo) as im:
            rgb = im.convert("RGB")
        w, h = rgb.width // 4, rgb.height // 4
        lr = rgb.crop((0, 0, 4 * w, 4 * h)).resize((w, h), Image.Resampling.BOX)
        path = lr_dir / f"{photo.stem}.png"
        lr.save(path)
        written.append(path)
    return written


class _Nudged:
    """A backend whose tile inputs are moved by a seeded uniform ``amount`` (all else the
    wrapped backend's)."""

    def __init__(self, backend, seed: int, amount: float = 1e-6):
        self._backend, self._rng, self._amount = backend, np.random.default_rng(seed), amount

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def upscale(self, lr01, top=0, left=0, seed=0):
        lr = np.asarray(lr01, dtype=np.float32)
        lr = lr + self._rng.uniform(-self._amount, self._amount, lr.shape).astype(np.float32)
        return self._backend.upscale(lr, top, left, seed)


def make_floor(lr_dir: Path, out_dir: Path, scale: int, nudge: int) -> None:
    from bimacosr_app.engine import select_backend
    from bimacosr_app.jobs import plan_batch

    backend = _Nudged(select_backend("reference"), seed=nudge)
    batch = plan_batch([lr_dir], out_dir, scale=scale, format="png", on_exists="overwrite")
    for result in batch.run(backend):
        print(f"{result.status} {result.output}", file=sys.stderr, flush=True)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def _diff(a: Path, b: Path) -> tuple[float, float]:
    d = np.abs(_pixels(a) - _pixels(b))
    return float(d.max()), float(d.mean())


def compare(ref_dir: Path, cand_dir: Path, floor_dirs: list[Path]) -> tuple[list[dict], bool]:
    rows, ok = [], True
    for ref in sorted(ref_dir.glob("*.png")):
        cand = cand_dir / ref.name
        if not cand.is_file():
            rows.append({"file": ref.name, "missing": True})
            ok = False
            continue
        row = {"file": ref.name, "size": list(Image.open(ref).size)}
        row["max"], row["mean"] = _diff(cand, ref)
        floors = [_diff(f / ref.name, ref) for f in floor_dirs if (f / ref.name).is_file()]
        if floors:
            row["floor_max"] = max(f[0] for f in floors)
            row["floor_mean"] = max(f[1] for f in floors)
            row["within"] = (row["max"] <= max(1.0, 1.5 * row["floor_max"])
                             and row["mean"] <= max(0.05, 1.5 * row["floor_mean"]))
            ok &= row["within"]
        rows.append(row)
    return rows, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reference_parity")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inputs")
    p.add_argument("lr_dir", type=Path)
    p.add_argument("--val", type=Path, default=VAL, help=f"photo folder (default: {VAL})")
    p = sub.add_parser("floor")
    p.add_argument("lr_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--nudge", type=int, default=1, help="seed of the 1e-6 input change")
    p = sub.add_parser("compare")
    p.add_argument("ref_dir", type=Path)
    p.add_argument("cand_dir", type=Path)
    p.add_argument("--floor", type=Path, action="append", default=[])
    p.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "inputs":
        for path in make_inputs(args.lr_dir, args.val):
            print(path)
        return 0
    if args.command == "floor":
        make_floor(args.lr_dir, args.out_dir, args.scale, args.nudge)
        return 0
    rows, ok = compare(args.ref_dir, args.cand_dir, args.floor)
    for r in rows:
        if r.get("missing"):
            print(f"{r['file']:<52} MISSING")
            continue
        size = f"{r['size'][0]}x{r['size'][1]}"
        line = f"{r['file']:<44} {size:>10} max {r['max']:5.1f} mean {r['mean']:6.3f}"
        if "floor_max" in r:
            line += (f"   floor max {r['floor_max']:5.1f} mean {r['floor_mean']:6.3f}   "
                     f"{'within' if r['within'] else 'OUTSIDE'}")
        print(line)
    print("all within the floor bounds" if ok else "NOT all within the floor bounds")
    if args.json:
        print(json.dumps({"rows": rows, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
