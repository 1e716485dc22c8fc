"""Pixel array helpers: dtype conversion, EXIF orientation, alpha resizing and compositing.

Arrays are ``(H, W)`` or ``(H, W, C)`` numpy arrays. Float images are ``float32`` in
``[0, 1]``; integer images are ``uint8`` (8-bit) or ``uint16`` (16-bit).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "apply_orientation",
    "composite_on_white",
    "quantize",
    "resize_alpha",
    "to_float32",
]


def to_float32(arr: np.ndarray) -> np.ndarray:
    """``uint8``/``uint16`` -> float32 scaled to ``[0, 1]``; floats are clipped (NaN -> 0).

    Always returns a new C-contiguous array (inputs may be flipped or transposed views).
    """
    if arr.dtype in (np.uint8, np.uint16):
        out = arr.astype(np.float32, order="C")
        out /= np.float32(np.iinfo(arr.dtype).max)
        return out
    if np.issubdtype(arr.dtype, np.floating):
        out = np.ascontiguousarray(np.clip(arr, 0.0, 1.0), dtype=np.float32)
        return np.nan_to_num(out, copy=False, nan=0.0)
    raise TypeError(f"expected a float, uint8 or uint16 array, got {arr.dtype}")


def quantize(arr: np.ndarray, bit_depth: int) -> np.ndarray:
    """Convert an image array to ``uint8`` (``bit_depth=8``) or ``uint16`` (``16``).

    Floats are clipped to ``[0, 1]`` and rounded; integer inputs are rescaled exactly
    (``x * 257`` from 8 to 16 bits, rounded ``x / 257`` from 16 to 8 bits).
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    if arr.dtype == dtype:
        return arr
    if arr.dtype == np.uint8:  # -> 16 bits
        return arr.astype(np.uint16) * np.uint16(257)
    if arr.dtype == np.uint16:  # -> 8 bits
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    scaled = to_float32(arr)  # always a fresh array here, safe to modify in place
    scaled *= np.float32(np.iinfo(dtype).max)
    return np.rint(scaled, out=scaled).astype(dtype)


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Transform pixels as the EXIF ``Orientation`` tag says, so that they display upright.

    Matches ``PIL.ImageOps.exif_transpose``; values outside 2..8 leave ``arr`` unchanged.
    The result is a view where possible (callers copy when they need contiguous memory).
    """
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(arr, -1)
    if orientation == 7:
        return arr[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(arr, 1)
    return arr


def resize_alpha(alpha: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an alpha plane to ``(height, width)`` cheaply, without fringes.

    The cheap path for the alpha channel, which does not go through the model: bicubic
    interpolation when enlarging, area averaging (antialiased) when shrinking, computed in
    float32 and clamped to ``[0, 1]`` so the cubic overshoot at hard edges cannot create
    halos. Fully opaque/transparent regions away from edges stay exactly 1/0.

    Args:
        alpha: ``(H, W)`` array, float in ``[0, 1]`` or ``uint8``/``uint16``.
        width, height: output size in pixels.

    Returns:
        ``(height, width)`` float32 array in ``[0, 1]``.
    """
    if alpha.ndim != 2:
        raise ValueError(f"alpha must be a 2-D (H, W) array, got shape {alpha.shape}")
    if width < 1 or height < 1:
        raise ValueError(f"output size must be positive, got {width}x{height}")
    src = to_float32(alpha)
    if (height, width) == src.shape:
        return src.copy()
    enlarging = width * height >= src.shape[0] * src.shape[1]
    interpolation = cv2.INTER_CUBIC if enlarging else cv2.INTER_AREA
    out = cv2.resize(src, (width, height), interpolation=interpolation)
    return np.clip(out, 0.0, 1.0, out=out)


def composite_on_white(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten ``pixels`` (``(H, W, 3)`` colour or ``(H, W)`` grey) over a white background
    using ``alpha``."""
    a = to_float32(alpha)
    if pixels.ndim == 3:
        a = a[..., None]
    return to_float32(pixels) * a + (np.float32(1) - a)
