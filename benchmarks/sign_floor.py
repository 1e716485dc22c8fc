"""A 1-bit model's rounding floor, and how close tiles and cpu-packed come to it, in 1/255.

    python -m benchmarks.sign_floor [--checkpoint FILE] [--tile 64] [--json]

On the two val crops the tests use (lomiri 176x120 and kde 256x192 LR, centre crops
box-downscaled 4x, seed 0), per crop, mean / p99 / max of |difference| in 1/255 of:

* ``floor``: the reference backend's whole image against itself with its input moved by a
  seeded 1e-6 Gaussian (the change that summation order alone can make; docs/ARCHITECTURE.md,
  "Sign sensitivity");
* ``tiled``: the reference backend's tiles (``--tile`` LR pixels) against its whole image;
* ``packed tiled``: the cpu-packed backend's tiles against its own whole image;
* ``packed``: the cpu-packed backend's whole image against the reference backend's.

The tests bound ``tiled`` and ``packed`` by max(1/255, 1.5 x floor) per statistic. Needs torch
(the reference backend) and the val photos (../shared/data/val).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import rows_json
from bimacosr_app.engine import default_checkpoint_path, select_backend
from bimacosr_app.tiling import TileSettings, upscale_image
from bimacosr_app.training.data import default_data_dir

CROPS = (("lomiri_aitzgorri_by_Aitzol_Berasategi.webp", 176, 120),
         ("kde_BytheWater.webp", 256, 192))  # (val photo, LR width, LR height)
WHOLE = 1 << 16  # a tile larger than any crop: one tile, the whole image
COLUMNS = ("floor", "tiled", "packed_tiled", "packed")


def centre_crop_lr(photo: Path, width: int, height: int) -> np.ndarray:
    """The photo's centre 4*width x 4*height crop box-downscaled 4x: (height, width, 3)
    float32 in [0, 1]."""
    with Image.open(photo) as im:
        rgb = im.convert("RGB")
    left, top = (rgb.width - 4 * width) // 2, (rgb.height - 4 * height) // 2
    crop = rgb.crop((left, top, left + 4 * width, top + 4 * height))
    return np.asarray(crop.resize((width, height), Image.Resampling.BOX), np.float32) / 255


def stats(diff: np.ndarray) -> dict:
    """mean, p99 and max of |difference|, in 1/255."""
    return {"mean": 255 * float(diff.mean()), "p99": 255 * float(np.quantile(diff, 0.99)),
            "max": 255 * float(diff.max())}


def measure(checkpoint: Path, tile: int) -> list[dict]:
    val = default_data_dir("val")
    missing = [name for name, _, _ in CROPS if not (val / name).is_file()]
    if missing:
        raise SystemExit(f"validation photos missing in {val}: {', '.join(missing)}")
    reference = select_backend("reference", checkpoint=checkpoint)
    packed = select_backend("cpu-packed", checkpoint=checkpoint)

    def run(backend, lr: np.ndarray, tile_size: int = WHOLE) -> np.ndarray:
        return upscale_image(backend, lr, settings=TileSettings(tile=tile_size)).pixels

    rows = []
    for name, width, height in CROPS:
        lr = centre_crop_lr(val / name, width, height)
        noise = np.random.default_rng(0).standard_normal(lr.shape, dtype=np.float32)
        ref = run(reference, lr)
        packed_whole = run(packed, lr)
        diffs = {
            "floor": np.abs(run(reference, np.clip(lr + 1e-6 * noise, 0, 1)) - ref),
            "tiled": np.abs(run(reference, lr, tile) - ref),
            "packed_tiled": np.abs(run(packed, lr, tile) - packed_whole),
            "packed": np.abs(packed_whole - ref),
        }
        row = {"crop": name.split("_")[0], "lr": f"{width}x{height}", "tile": tile}
        for column in COLUMNS:
            row.update({f"{column}_{k}": v for k, v in stats(diffs[column]).items()})
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="packed checkpoint (default: the bundled model)")
    parser.add_argument("--tile", type=int, default=64, help="tile side in LR pixels (default 64)")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args()
    checkpoint = args.checkpoint or default_checkpoint_path()
    rows = measure(checkpoint, args.tile)
    print(f"{checkpoint.name}, tile {args.tile}: |difference| mean / p99 / max in 1/255")
    print(f"{'crop':<8}{'LR':>9}" + "".join(f"{c:>22}" for c in COLUMNS))
    for r in rows:
        cells = "".join(f"{r[c + '_mean']:>8.2f}{r[c + '_p99']:>7.2f}{r[c + '_max']:>7.2f}"
                        for c in COLUMNS)
        print(f"{r['crop']:<8}{r['lr']:>9}{cells}")
    if args.json:
        print(rows_json(rows))


if __name__ == "__main__":
    main()
