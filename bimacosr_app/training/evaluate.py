"""``python -m bimacosr_app.training.evaluate --checkpoint PATH [--against PATH] [--crop PX]
[--photos DIR | --lr-dir DIR --gt-dir DIR] [--save DIR] [--json] [--device cpu|cuda]
[--weights ema|model]``

Upscales every LR image and reports PSNR-Y and SSIM-Y (BT.601 luma, 4-pixel border shaved,
see :mod:`bimacosr_app.metrics`) and the perceptual distance ST-LPIPS (RGB, whole image,
:mod:`.perceptual`; lower is better) per image and as means, next to bicubic and, with
``--against``, next to a second model (e.g. the FP one-step parent of a 1-bit model) on the
same inputs: keys ``psnr_y``, ``ssim_y``, ``st_lpips`` with the prefixes ``bicubic_`` and
``against_``.

``--checkpoint`` is a packed model file (run by the engine's ``reference`` backend, or
``--backend``) or a training run directory (its EMA weights, or the live ones with
``--weights model``; a teacher run samples all T steps, the other stages one). Without
``--lr-dir``/``--gt-dir`` it measures the whole validation photos (``--crop PX``: centre
crops of at most PX a side) on both tracks (bicubic and realistic, fixed seeds: see
``data.validation_pairs``); ``--photos DIR`` degrades those photos the same way instead (the
training photos, say: a gain there well above the validation photos' is overfitting); with
``--lr-dir``/``--gt-dir``, LR and ground-truth images are paired by file stem. ``--save``
writes the outputs as PNG named like the inputs (one sub-folder per track, but for
``--lr-dir``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..metrics import psnr_y, ssim_y
from ..model import LATENT_CHANNELS, bicubic_upscale, from_latent, to_latent
from .data import decode_photo, list_photos, validation_pairs
from .perceptual import STLPIPS
from .trainer import load_run_model

__all__ = ["evaluate_pairs", "load_upscaler", "main"]


def load_upscaler(checkpoint: Path, device: torch.device, backend: str = "reference",
                  weights: str = "ema"):
    """A function lr01 (1,3,h,w) -> hr01 (1,3,4h,4w), and a short description."""
    if checkpoint.is_dir():
        model, cfg = load_run_model(checkpoint, device, weights)
        schedule = cfg.schedule()
        steps = None if cfg.stage == "teacher" else 1

        @torch.no_grad()
        def run(lr01):
            lr = lr01.to(device) * 2 - 1
            g = torch.Generator().manual_seed(0)
            noise = torch.randn(1, LATENT_CHANNELS, *lr.shape[-2:], generator=g).to(device)
            y = to_latent(bicubic_upscale(lr))
            x0 = schedule.sample(lambda x, t: model(x, lr, t, y), y, noise, steps=steps)
            return ((from_latent(x0) + 1) * 0.5).clamp(0, 1).cpu()

        return run, (f"{cfg.stage} run {checkpoint}, {weights} weights "
                     f"({'T steps' if steps is None else 'one step'})")

    from ..engine import select_backend  # the packed format lives with the engine

    engine = select_backend(backend, checkpoint=checkpoint, device=device)

    @torch.no_grad()
    def run(lr01):
        return engine.upscale(lr01)

    return run, f"packed {checkpoint.name} on {engine.name}"


def _scores(prefix: str, sr: torch.Tensor, hr: torch.Tensor, perceptual) -> dict:
    return {f"{prefix}psnr_y": psnr_y(sr, hr), f"{prefix}ssim_y": ssim_y(sr, hr),
            f"{prefix}st_lpips": perceptual(sr, hr)}


def evaluate_pairs(upscale, pairs, perceptual, save_dir: Path | None = None,
                   against=None) -> dict:
    """Per-image and mean scores of ``upscale`` on ``pairs`` (name, lr, hr), next to bicubic
    and, when given, the upscaler ``against``; ``perceptual(sr, hr)`` is the ST-LPIPS."""
    rows = []
    for name, lr, hr in pairs:
        sr = upscale(lr[None])
        bic = F.interpolate(lr[None], scale_factor=4, mode="bicubic",
                            align_corners=False).clamp(0, 1)
        row = {"image": name, **_scores("", sr, hr[None], perceptual),
               **_scores("bicubic_", bic, hr[None], perceptual)}
        if against is not None:
            row.update(_scores("against_", against(lr[None]), hr[None], perceptual))
        rows.append(row)
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            img = sr[0].mul(255).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(img).save(save_dir / f"{Path(name).stem}.png")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"}
    return {"images": rows, "mean": mean}


def _dir_pairs(lr_dir: Path, gt_dir: Path):
    gts = {p.stem: p for p in list_photos(gt_dir)}
    pairs = []
    for p in list_photos(lr_dir):
        if p.stem not in gts:
            raise SystemExit(f"no ground truth for {p.name} in {gt_dir}")
        lr = decode_photo(p).float() / 255
        hr = decode_photo(gts[p.stem]).float() / 255
        h, w = lr.shape[-2] * 4, lr.shape[-1] * 4
        if hr.shape[-2] < h or hr.shape[-1] < w:
            raise SystemExit(f"{gts[p.stem].name} is smaller than 4x {p.name}")
        pairs.append((p.name, lr, hr[:, :h, :w]))
    return pairs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bimacosr_app.training.evaluate",
                                description="PSNR-Y / SSIM-Y of a model against bicubic.")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--against", type=Path,
                   help="a second model (run directory or packed file) scored on the same inputs")
    p.add_argument("--photos", type=Path,
                   help="photos to degrade on both tracks instead of the validation photos")
    p.add_argument("--lr-dir", type=Path)
    p.add_argument("--gt-dir", type=Path)
    p.add_argument("--save", type=Path, help="write the outputs as PNG here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--backend", default="reference", help="engine backend for packed files")
    p.add_argument("--crop", type=int, default=None, metavar="PX",
                   help="centre crops of at most PX a side of the photos "
                        "(default: the whole photos; 512 gives the crops of earlier figures)")
    p.add_argument("--weights", choices=("ema", "model"), default="ema",
                   help="which weights of a run directory: EMA (default) or live")
    args = p.parse_args(argv)
    if (args.lr_dir is None) != (args.gt_dir is None):
        p.error("--lr-dir and --gt-dir go together")
    if args.photos and args.lr_dir:
        p.error("--photos and --lr-dir/--gt-dir exclude each other")
    if args.photos and not args.photos.is_dir():
        p.error(f"--photos: no folder {args.photos}")
    device = torch.device(args.device)
    upscale, what = load_upscaler(args.checkpoint, device, args.backend, args.weights)
    against, against_what = (load_upscaler(args.against, device, args.backend)
                             if args.against else (None, None))
    perceptual = STLPIPS(device)
    if args.lr_dir:
        sets = {"dirs": _dir_pairs(args.lr_dir, args.gt_dir)}
    else:
        sets = {track: validation_pairs(args.photos, track, max_side=args.crop)
                for track in ("bicubic", "realistic")}
    results = {"checkpoint": str(args.checkpoint), "model": what}
    if against is not None:
        results["against"] = against_what
    for track, pairs in sets.items():
        save = None if args.save is None else (args.save if args.lr_dir else args.save / track)
        results[track] = evaluate_pairs(upscale, pairs, perceptual, save, against)
    if args.json:
        print(json.dumps(results))
        return 0
    print(what if against is None else f"{what}\nagainst: {against_what}")
    columns = [("", "PSNR-Y"), ("", "SSIM-Y"), ("", "ST-LPIPS"), ("bicubic_", "bic PSNR"),
               ("bicubic_", "bic SSIM"), ("bicubic_", "bic LPIPS")]
    if against is not None:
        columns += [("against_", "vs PSNR"), ("against_", "vs SSIM"), ("against_", "vs LPIPS")]
    keys = {"PSNR": "psnr_y", "SSIM": "ssim_y", "LPIPS": "st_lpips"}
    for track, r in results.items():
        if not isinstance(r, dict):
            continue
        print(f"\n{track}: {'image':<40}" + "".join(f"{label:>10}" for _, label in columns))
        for row in [*r["images"], {"image": "mean", **r["mean"]}]:
            cells = []
            for prefix, label in columns:
                key = prefix + next(v for k, v in keys.items() if k in label)
                cells.append(f"{row[key]:>10.2f}" if "psnr" in key else f"{row[key]:>10.4f}")
            print(f"  {row['image']:<46}" + "".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
