"""``run_request``: one image from file to file — the only place that chains image_io, tiling
and the engine.

read (header checks first) -> tiles -> backend -> stitch -> x2/x3 downscale -> alpha ->
quantize -> atomic write with provenance. The input file is only ever opened for reading, and
the output appears complete or not at all (``image_io.write_image``); where it goes follows
:func:`~.request.plan_output` (never over an input, nor over a file this app did not write
unless it is the one named). A grey input (8 or 16 bit) runs through the model as three equal
channels and comes out grey: the luma (BT.601) of the result, written as one channel. Peak
memory beyond the model and one tile: the float32 x4 output (12 bytes per output pixel) plus
its quantized copy (3 or 6 bytes per pixel) while writing.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import APP_NAME, __version__
from ..image_io import (
    MAX_OUTPUT_SIDE,
    ImageIOError,
    ImageWriteError,
    probe_image,
    read_image,
    resize_alpha,
    write_image,
)
from ..image_io.errors import describe_os_error
from ..tiling import Cancelled, TileSettings, available_ram_bytes, upscale_image
from .request import (
    Progress,
    UpscaleRequest,
    UpscaleResult,
    output_format,
    output_path,
    plan_output,
)

log = logging.getLogger(__name__)

__all__ = ["ProgressCallback", "run_request"]

ProgressCallback = Callable[[Progress], None]

#: Scale factor of the model (the memory check assumes it); 2 and 3 are downscaled from it.
_MODEL_SCALE = 4
#: Bytes per output pixel that must fit in RAM: float32 RGB plus the quantized copy.
_BYTES_PER_OUTPUT_PIXEL = 12 + 6
#: BT.601 luma weights: a grey input's output is this mix of the model's three channels.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def run_request(
    request: UpscaleRequest,
    backend=None,
    progress: ProgressCallback | None = None,
    cancel=None,
) -> UpscaleResult:
    """Upscale ``request.input`` and write the result; never raises for a bad image.

    Args:
        request: what to do.
        backend: a ready engine backend; ``None`` selects ``request.backend`` on
            ``request.device`` (loading the model: pass one backend for many requests).
        progress: called with a :class:`Progress` after every tile and once at the end.
        cancel: ``threading.Event``-like, checked between tiles and before writing; when set
            the result is ``"cancelled"`` and no file is written.

    Returns:
        The result; ``status="failed"`` carries the message for the user (unreadable or
        unsupported input, output too large for its format, unwritable folder, disk full, …).
        ``KeyboardInterrupt`` propagates, leaving no partial file.
    """
    start = time.monotonic()
    result = UpscaleResult(request.input, None, "failed")
    try:
        _run(request, backend, progress, cancel, result)
    except Cancelled:
        result.status, result.output = "cancelled", None
    except ImageIOError as exc:
        result.status, result.error = "failed", str(exc)
        log.warning("%s", exc, exc_info=True)
    except MemoryError as exc:
        result.status = "failed"
        result.error = f"Cannot upscale '{request.input}': out of memory ({exc or 'no detail'})"
        log.error("%s", result.error, exc_info=True)
    except Exception as exc:  # one bad file must never stop a batch
        result.status = "failed"
        result.error = f"Cannot upscale '{request.input}': {type(exc).__name__}: {exc}"
        log.exception("%s", result.error)
    result.seconds = time.monotonic() - start
    return result


def _run(request: UpscaleRequest, backend, progress, cancel, result: UpscaleResult) -> None:
    info = probe_image(request.input)  # size limits and format, from the header only
    result.input_size = (info.width, info.height)
    fmt = output_format(request, info.format)
    planned = output_path(request, fmt)
    target = _apply_policy(request, planned, result)
    if target is None:
        _skip(result, planned)
        return
    width, height = info.width * request.scale, info.height * request.scale
    result.output_size = (width, height)
    _check_output_size(request, target, fmt, width, height)

    image = read_image(request.input)
    result.warnings.extend(image.warnings)
    if backend is None:
        from ..engine import select_backend  # loads the model: only when not given one

        backend = select_backend(
            request.backend, device=None if request.device == "auto" else request.device
        )
    result.backend = backend.name
    settings = TileSettings(budget_mb=request.tile_budget_mb)
    t0 = time.monotonic()

    def on_tile(fraction: float, done: int, total: int) -> None:
        if progress is not None:
            elapsed = time.monotonic() - t0
            eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
            progress(Progress(fraction, done, total, eta))

    tiled = upscale_image(backend, image.rgb, seed=request.seed, settings=settings,
                          progress=on_tile, cancel=cancel)
    result.warnings.extend(tiled.warnings)
    tiling = {"tile": tiled.tile, "context": tiled.context, "feather": tiled.feather,
              "tiles": tiled.tiles, "splits": tiled.splits,
              "cut_period": list(tiled.cut_period)}
    result.details["tiling"] = tiling
    pixels = tiled.pixels  # (4H, 4W, 3) float32
    del tiled
    if image.grey:
        pixels = pixels @ _LUMA  # (4H, 4W)
    if pixels.shape[:2] != (height, width):  # x2, x3: antialiased downscale of the x4 result
        pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
    alpha = None if image.alpha is None else resize_alpha(image.alpha, width, height)
    bit_depth = 16 if image.bit_depth == 16 and fmt in ("PNG", "TIFF") else 8
    pixels = _quantize_in_place(pixels, bit_depth)  # (H', W'[, 3]) uint8/uint16
    if cancel is not None and cancel.is_set():
        raise Cancelled
    final = _apply_policy(request, target, result)  # the name may have been taken meanwhile
    if final is None:
        _skip(result, target)
        return
    _make_folder(final)
    result.output = write_image(
        final,
        pixels,
        alpha=alpha,
        fmt=fmt,
        quality=request.quality,
        bit_depth=bit_depth,
        icc_profile=image.icc_profile,
        exif=image.exif,
        provenance=_provenance(request, backend, tiling, info.width, info.height),
        strip_metadata=request.strip_metadata,
    )
    result.status = "done"
    if progress is not None:
        progress(Progress(1.0, tiling["tiles"], tiling["tiles"], 0.0))


def _skip(result: UpscaleResult, existing: Path) -> None:
    result.status, result.output = "skipped", existing
    result.error = "the output file already exists"


def _apply_policy(request: UpscaleRequest, target: Path, result: UpscaleResult) -> Path | None:
    """The file to write (:func:`~.request.plan_output`), or ``None`` to skip; a note goes to
    the result's warnings.

    Raises:
        ImageWriteError: "overwrite" of the input itself, named as the output.
    """
    plan = plan_output(request, target)
    if plan.file is not None and plan.note:
        result.warnings.append(plan.note)
    return plan.file


def _check_output_size(request: UpscaleRequest, target: Path, fmt: str, width: int,
                       height: int) -> None:
    """Refuse before any work an output the format cannot store or RAM cannot hold."""
    limit = MAX_OUTPUT_SIDE[fmt]
    if max(width, height) > limit:
        raise ImageWriteError(
            target, f"{fmt} cannot store {width}x{height} pixels (at most {limit} per side); "
            "choose PNG or TIFF, or a smaller scale")
    needed = width * height * _BYTES_PER_OUTPUT_PIXEL * _MODEL_SCALE**2 // request.scale**2
    available = available_ram_bytes()
    if available is not None and needed > available:
        raise ImageWriteError(
            target, f"a {width}x{height} output needs about {needed / 2**30:.1f} GB of memory, "
            f"more than the {available / 2**30:.1f} GB available")


def _make_folder(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = describe_os_error(exc)
        if exc.errno in (errno.EACCES, errno.EPERM):
            reason = f"the folder cannot be created ({reason})"
        raise ImageWriteError(target, reason) from exc


def _quantize_in_place(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """float32 [0, 1] -> rounded uint8/uint16, reusing ``pixels`` as scratch (it is consumed)."""
    top = 255.0 if bit_depth == 8 else 65535.0
    np.clip(pixels, 0.0, 1.0, out=pixels)
    pixels *= np.float32(top)
    np.rint(pixels, out=pixels)
    return pixels.astype(np.uint8 if bit_depth == 8 else np.uint16)


def _provenance(request: UpscaleRequest, backend, tiling: dict[str, Any], width: int,
                height: int) -> dict[str, Any]:
    """The record stored in the output file (see ``image_io.read_provenance``)."""
    checkpoint = getattr(backend, "checkpoint", None)
    return {
        "app": APP_NAME,
        "version": __version__,
        "model_sha256": getattr(checkpoint, "content_sha256", None),
        "backend": backend.name,
        "device": str(backend.device),
        "scale": request.scale,
        "seed": request.seed,
        "tiling": tiling,
        "source_size": [width, height],
    }
