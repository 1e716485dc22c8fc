"""Background work for the UI: folder scans, thumbnails with header sizes, compare images.

Both run on a small private ``QThreadPool`` (never the engine thread, so browsing results stays
quick while a job runs) and report back through queued signals. :meth:`Loaders.shutdown`
waits for running tasks, so no thread outlives the window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

from ..jobs import (
    ImageIOError,
    QualityReport,
    ScanResult,
    analyse,
    probe_image,
    read_image,
    scan_inputs,
)
from .canvas import build_pyramid
from .imaging import downscale_to, load_display_image, load_thumbnail, rgb_view, to_uint8
from .queue_model import THUMB_SIDE

__all__ = ["CompareImages", "Loaders"]


@dataclass
class CompareImages:
    """What the compare view and the quality panel need for one finished item."""

    item_id: str
    before: np.ndarray  #: the input as decoded for the model, (h,w,3) uint8
    before_levels: list[QImage]
    after_levels: list[QImage]  #: the output file, as a pyramid
    down: np.ndarray  #: the output area-downscaled to the input size, uint8
    report: QualityReport


def _load_compare(item_id: str, input_path: Path, output_path: Path,
                  seam_period: tuple[int, int]) -> CompareImages:
    before = to_uint8(read_image(input_path).rgb)
    after_image = load_display_image(output_path)
    after = rgb_view(after_image)  # shares after_image's pixels
    h, w = before.shape[:2]
    return CompareImages(
        item_id=item_id,
        before=before,
        before_levels=build_pyramid(before),
        after_levels=build_pyramid(after, after_image),
        down=downscale_to(after, w, h),
        report=analyse(before, after, seam_period if any(seam_period) else None),
    )


def _thumbnail(path: Path) -> tuple[QImage | None, tuple[int, int] | None]:
    info = probe_image(path)
    return load_thumbnail(path, THUMB_SIDE * 2), (info.width, info.height)


class _Relay(QObject):
    done = Signal(object, object)  # (key, result)
    error = Signal(object, str)  # (key, message)


class _Task(QRunnable):
    def __init__(self, relay: _Relay, key, fn: Callable, *args) -> None:
        super().__init__()
        self.relay, self.key, self.fn, self.args = relay, key, fn, args

    def run(self) -> None:
        try:
            result = self.fn(*self.args)
        except (ImageIOError, OSError, ValueError, MemoryError) as exc:
            self.relay.error.emit(self.key, str(exc))
        else:
            self.relay.done.emit(self.key, result)


class Loaders(QObject):
    """``scanned(ScanResult)``, ``thumbnailReady(item_id, QImage, (w, h))``,
    ``thumbnailFailed(item_id, message)``, ``compareReady(CompareImages)``,
    ``compareFailed(item_id, message)``."""

    scanned = Signal(object)
    thumbnailReady = Signal(str, object, object)
    thumbnailFailed = Signal(str, str)
    compareReady = Signal(object)
    compareFailed = Signal(str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._thumbs = _Relay(self)
        self._thumbs.done.connect(lambda key, r: self.thumbnailReady.emit(key, r[0], r[1]))
        self._thumbs.error.connect(lambda key, msg: self.thumbnailFailed.emit(key, msg))
        self._compare = _Relay(self)
        self._compare.done.connect(lambda _key, images: self.compareReady.emit(images))
        self._compare.error.connect(lambda key, msg: self.compareFailed.emit(key, msg))
        self._scan = _Relay(self)
        self._scan.done.connect(lambda _key, result: self.scanned.emit(result))
        self._scan.error.connect(lambda _key, msg: self.scanned.emit(ScanResult([], [msg])))

    def scan(self, paths: list[Path], recursive: bool) -> None:
        """Find the images among files and folders (see :func:`jobs.scan_inputs`)."""
        self._pool.start(_Task(self._scan, None, scan_inputs, paths, recursive), 2)

    def thumbnail(self, item_id: str, path: Path) -> None:
        self._pool.start(_Task(self._thumbs, item_id, _thumbnail, path))

    def compare(self, item_id: str, input_path: Path, output_path: Path,
                seam_period: tuple[int, int]) -> None:
        # Loading a result outranks thumbnails.
        self._pool.start(_Task(self._compare, item_id, _load_compare, item_id, input_path,
                               output_path, seam_period), 1)

    def shutdown(self) -> None:
        self._pool.clear()
        self._pool.waitForDone()
