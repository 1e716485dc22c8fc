"""Pixels for display: loading images as ``QImage``, numpy conversions, region upsampling.

Inputs are decoded with :func:`~bimacosr_app.image_io.read_image`, exactly as the jobs layer
decodes them (EXIF orientation, ICC, 16-bit), so the "before" image lines up with the output.
Outputs (the app's own files) and thumbnails go through ``QImageReader`` when Qt can read the
format, which avoids a float32 copy of a large result; anything else falls back to
``read_image``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QImageReader

from ..jobs import read_image

__all__ = [
    "difference_map",
    "downscale_to",
    "load_display_image",
    "load_thumbnail",
    "qimage_from_rgb",
    "rgb_view",
    "to_uint8",
    "upsample_region",
]


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """(H,W,3) float in [0,1] or uint8/uint16 -> uint8, rounded."""
    if rgb.dtype == np.uint8:
        return rgb
    if rgb.dtype == np.uint16:
        return ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def qimage_from_rgb(rgb: np.ndarray) -> QImage:
    """A ``QImage`` (RGB888) owning a copy of the pixels of an (H,W,3) array."""
    arr = np.ascontiguousarray(to_uint8(rgb))
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def rgb_view(image: QImage) -> np.ndarray:
    """(H,W,3) uint8 view of an RGB888 ``QImage``'s pixels (no copy: keep ``image`` alive)."""
    if image.format() != QImage.Format.Format_RGB888:
        raise ValueError(f"expected an RGB888 image, got {image.format()}")
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), np.uint8, count=stride * h)
    return np.lib.stride_tricks.as_strided(buf, shape=(h, w, 3), strides=(stride, 3, 1),
                                           writeable=False)


def _read_with_qt(path: Path, scaled_to: int | None = None) -> QImage | None:
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    reader.setAllocationLimit(0)  # the app's own outputs may be far above Qt's 256 MB default
    if not reader.canRead():
        return None
    if scaled_to is not None:
        size = reader.size()
        if size.isValid() and max(size.width(), size.height()) > scaled_to:
            reader.setScaledSize(size.scaled(QSize(scaled_to, scaled_to),
                                             Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return None if image.isNull() else image


def load_display_image(path: str | Path) -> QImage:
    """An output file as an RGB888 ``QImage`` (raises ImageReadError when unreadable)."""
    image = _read_with_qt(Path(path))
    if image is None:
        return qimage_from_rgb(read_image(path).rgb)
    return image.convertToFormat(QImage.Format.Format_RGB888)


def load_thumbnail(path: str | Path, side: int) -> QImage:
    """A thumbnail whose long side is at most ``side`` (raises ImageReadError)."""
    image = _read_with_qt(Path(path), scaled_to=side)
    if image is None:
        rgb = to_uint8(read_image(path).rgb)
        h, w = rgb.shape[:2]
        f = min(1.0, side / max(h, w))
        rgb = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))),
                         interpolation=cv2.INTER_AREA)
        return qimage_from_rgb(rgb)
    if max(image.width(), image.height()) > side:
        image = image.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    return image


def downscale_to(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-average ``rgb`` to ``width`` x ``height`` (the output brought back to input size)."""
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def difference_map(a: np.ndarray, b: np.ndarray, gain: float) -> np.ndarray:
    """``gain`` x |a - b| per channel as uint8; ``a`` and ``b`` are same-size uint8 or [0,1]."""
    fa = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    fb = b.astype(np.float32) / (255.0 if b.dtype == np.uint8 else 1.0)
    return to_uint8(np.abs(fa - fb) * gain)


def upsample_region(src: np.ndarray, x0: int, y0: int, x1: int, y1: int,
                    factor: float) -> np.ndarray:
    """Bicubic upsampling of ``src[y0:y1, x0:x1]`` by ``factor``, as if the whole image had
    been upsampled and then cropped: a 2-pixel margin feeds the kernel at inner edges."""
    m = 2
    h, w = src.shape[:2]
    a0, b0 = max(0, x0 - m), max(0, y0 - m)
    a1, b1 = min(w, x1 + m), min(h, y1 + m)
    crop = src[b0:b1, a0:a1]
    out_w, out_h = round((a1 - a0) * factor), round((b1 - b0) * factor)
    up = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_CUBIC)
    ox, oy = round((x0 - a0) * factor), round((y0 - b0) * factor)
    return np.ascontiguousarray(
        up[oy : oy + round((y1 - y0) * factor), ox : ox + round((x1 - x0) * factor)])
