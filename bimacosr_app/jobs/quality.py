"""Consistency check of a result: the output brought back to the input size should match it.

:func:`analyse` measures, on a central crop of at most :data:`MAX_SIDE` input pixels a side:

* PSNR-Y and SSIM-Y of the area-downscaled output against the input (a faithful upscale
  scores high; colour shifts, blur or hallucinated structure score low);
* the mean colour shift per RGB channel, in 8-bit levels;
* a seam score at the tile cuts: the step of the residual (output minus bicubic input) across
  each cut line, relative to its neighbourhood (about 1 when there is no seam).

It returns warnings in words when a value is beyond its threshold. Qt-free: the window's
quality panel shows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..metrics import psnr_y, ssim_y

__all__ = ["COLOUR_WARN", "PSNR_WARN", "SEAM_WARN", "QualityReport", "analyse"]

MAX_SIDE = 768  # input pixels a side measured (central crop of larger inputs)
PSNR_WARN = 28.0  # dB: below this, the result does not match its input well
COLOUR_WARN = 3.0  # 8-bit levels of mean shift in any channel
SEAM_WARN = 2.5  # residual step at a tile cut vs its surroundings
_SEAM_WINDOW = 8  # columns/rows either side forming a cut's baseline
_MIN_STEP = 0.5 / 255  # a baseline below half a level counts as half a level (invisible)


@dataclass(frozen=True)
class QualityReport:
    psnr: float  #: dB, output downscaled back vs input (luma)
    ssim: float  #: same comparison
    colour_shift: tuple[float, float, float]  #: mean (down(output) - input) per channel, levels
    seam_score: float  #: worst residual step at a tile cut relative to its neighbours; nan: none
    cropped: bool  #: measured on a central crop
    warnings: tuple[str, ...]


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def _as_float(rgb: np.ndarray) -> np.ndarray:
    scale = 255.0 if rgb.dtype == np.uint8 else 1.0
    return np.ascontiguousarray(rgb, dtype=np.float32) / scale


def _seam_score(residual: np.ndarray, offset: int, period: int) -> float:
    """Worst ratio, over cut lines between columns, of the mean |step| across the cut to the
    median step of the columns around it. ``offset``: absolute output column of column 0."""
    steps = np.abs(np.diff(residual, axis=1)).mean(axis=0)  # steps[i]: between i and i+1
    worst = math.nan
    for cut in range(-offset % period or period, residual.shape[1] - 1, period):
        i = cut - 1  # step from column cut-1 to column cut
        lo, hi = max(0, i - _SEAM_WINDOW), min(len(steps), i + _SEAM_WINDOW + 1)
        around = np.concatenate([steps[lo:i], steps[i + 1 : hi]])
        if i < 0 or len(around) < _SEAM_WINDOW:
            continue
        ratio = float(steps[i] / max(float(np.median(around)), _MIN_STEP))
        worst = ratio if math.isnan(worst) else max(worst, ratio)
    return worst


def _area_downscale(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-average ``rgb`` to ``width`` x ``height``."""
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def analyse(inp: np.ndarray, out: np.ndarray,
            period: tuple[int, int] | None = None) -> QualityReport:
    """Compare ``out`` (H,W,3 uint8 or [0,1] float) with its input ``inp`` (h,w,3, same
    conventions). ``period``: output pixels between tile cuts along (rows, columns), 0 for an
    axis without cuts, or None to skip the seam check."""
    h, w = inp.shape[:2]
    sy, sx = out.shape[0] / h, out.shape[1] / w
    cw, ch = min(w, MAX_SIDE), min(h, MAX_SIDE)
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    ox0, oy0 = round(x0 * sx), round(y0 * sy)
    ox1, oy1 = round((x0 + cw) * sx), round((y0 + ch) * sy)
    inp_c = _as_float(inp[y0 : y0 + ch, x0 : x0 + cw])
    out_c = _as_float(out[oy0:oy1, ox0:ox1])

    down = _area_downscale(out_c, cw, ch)
    border = 2 if min(cw, ch) > 16 else 0
    psnr = psnr_y(down, inp_c, border=border)
    ssim = ssim_y(down, inp_c, border=border) if min(cw, ch) - 2 * border >= 11 else math.nan
    shift = tuple(float(v) for v in (down - inp_c).reshape(-1, 3).mean(axis=0) * 255.0)

    seam = math.nan
    if period:
        bicubic = cv2.resize(inp_c, (out_c.shape[1], out_c.shape[0]),
                             interpolation=cv2.INTER_CUBIC)
        residual = _luma(out_c) - _luma(bicubic)
        rows, cols = period
        scores = ([_seam_score(residual, ox0, cols)] if cols else []) + (
            [_seam_score(residual.T, oy0, rows)] if rows else [])
        scores = [s for s in scores if not math.isnan(s)]
        seam = max(scores) if scores else math.nan

    warnings = []
    if psnr < PSNR_WARN:
        warnings.append(f"The result does not match its input well ({psnr:.1f} dB when "
                        f"brought back to the input size; {PSNR_WARN:.0f} dB or more is usual).")
    worst = max(shift, key=abs)
    if abs(worst) > COLOUR_WARN:
        channel = "RGB"[shift.index(worst)]
        warnings.append(f"Colour shift: the {channel} channel moved by {worst:+.1f} levels "
                        f"on average.")
    if not math.isnan(seam) and seam > SEAM_WARN:
        warnings.append(f"Possible visible tile seams (step {seam:.1f}x its surroundings).")
    return QualityReport(psnr=psnr, ssim=ssim, colour_shift=shift, seam_score=seam,
                         cropped=(cw, ch) != (w, h), warnings=tuple(warnings))
