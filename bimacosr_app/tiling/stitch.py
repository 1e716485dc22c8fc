"""Upscale an image tile by tile and stitch the tiles with feathered blending.

Streaming: the only image-sized buffer is the float32 output (12 bytes per output pixel, so
288 MB for 24 megapixels; float32 rather than uint16 because tiles are *added* into it with
fractional weights). Each tile is read from the LR array, upscaled, multiplied by its feather
weights and added in place, then dropped. The weights of all tiles sum to 1 (see
:mod:`.plan`), so the buffer is the finished image once every tile is in.

Each tile is upscaled at its absolute LR position (``backend.upscale(..., top, left, seed)``),
so the diffusion noise a tile uses is the noise the whole image would use there
(``model/noise.py``); what differs from a whole-image run is only the receptive field cut at
the box edge, which the context keeps away from the blended region. With a smooth (full
precision) model the default context of 64 LR pixels keeps tiled output within 1/255 of the
whole-image output; the shipped 1-bit model is chaotic (its whole-image output already moves
by ~12/255 on average for a 1e-6 input change), so there tiles agree only to that floor
(tests/test_tiling.py has the figures).

Tile size: :data:`~.memory.DEFAULT_TILE` unless the settings give one (or a budget), never
from the free memory, so that the same command gives the same pixels whatever memory is free;
a plan whose largest box needs more than the device has free gets a warning
(``TiledImage.warnings``) and is run as planned.

Out of memory on a tile: that tile alone is split into smaller aligned tiles and redone
(recursively, down to one ``required_multiple`` per side); tiles already added stay; later
tiles at least as large as one that failed are split before being tried. The output then
depends on the memory the run had, which ``TiledImage.warnings`` says.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .memory import (
    DEFAULT_TILE,
    is_out_of_memory,
    memory_warning,
    release_free_memory,
    tile_for_budget,
)
from .plan import Tile, plan_tiles, split_tile, tile_weights

__all__ = [
    "DEFAULT_CONTEXT",
    "DEFAULT_FEATHER",
    "Cancelled",
    "TileSettings",
    "TiledImage",
    "upscale_image",
]

#: LR pixels of context read beyond each side of a tile's core (rounded up to the backend's
#: multiple). Enough for the trained full-precision one-step model (max 0.002/255 from the
#: whole image); see tests/test_tiling.py.
DEFAULT_CONTEXT = 64
#: Width, in LR pixels, of the linear blend across each cut between tiles (at most the
#: backend's multiple and twice the context).
DEFAULT_FEATHER = 32


class Cancelled(Exception):
    """The caller's cancel event was set; raised between tiles."""


class _Event(Protocol):
    def is_set(self) -> bool: ...


ProgressCallback = Callable[[float, int, int], None]


@dataclass(frozen=True)
class TileSettings:
    """How to tile. ``tile=None`` derives the core side from ``budget_mb``
    (:func:`~.memory.tile_for_budget`), and ``budget_mb=None`` is the fixed
    :data:`~.memory.DEFAULT_TILE` (the same on every machine)."""

    tile: int | None = None  #: largest core side in LR pixels
    context: int = DEFAULT_CONTEXT  #: LR pixels read beyond each side of a core
    feather: int = DEFAULT_FEATHER  #: blend width across a cut, LR pixels
    budget_mb: float | None = None  #: memory one tile may use


@dataclass
class TiledImage:
    """The stitched output and how it was tiled (for provenance and tests)."""

    pixels: np.ndarray  #: (scale*H, scale*W, 3) float32 in [0, 1]
    tile: int  #: core side used (before any split)
    context: int  #: LR pixels of context per side
    feather: int  #: blend width, LR pixels
    tiles: int  #: successful backend calls
    splits: int  #: tiles split and redone after running out of memory
    #: LR pixels between planned tile cuts along (rows, columns); 0: no cut on that axis.
    #: Cores are balanced per axis, so cuts fall at multiples of these (splits add more).
    cut_period: tuple[int, int] = (0, 0)
    #: Said to the user: the plan may not fit the free memory; tiles were split.
    warnings: list[str] = dataclasses.field(default_factory=list)


def upscale_image(
    backend,
    lr: np.ndarray,
    *,
    seed: int = 0,
    settings: TileSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: _Event | None = None,
) -> TiledImage:
    """Upscale ``lr`` (H, W, 3) float32 in [0, 1] by ``backend.scale`` through tiles.

    Args:
        backend: an engine backend (``upscale``, ``scale``, ``required_multiple``, ``device``).
        lr: the LR image, (H, W, 3) float32 in [0, 1].
        seed: the noise seed, shared by all tiles.
        settings: tiling parameters (defaults: :class:`TileSettings`).
        progress: called after every tile with (fraction of the LR area done, tiles done,
            tiles planned); the plan grows when a tile is split.
        cancel: ``threading.Event``-like; checked before every tile.

    Raises:
        Cancelled: ``cancel`` was set; nothing is returned.
        MemoryError / torch.OutOfMemoryError: a tile of one multiple per side still did not
            fit.

    The backend gets NumPy tiles (engine/backends.py's contract); what it returns is read with
    ``np.asarray`` (a CPU torch tensor works too).
    """
    settings = settings or TileSettings()
    if lr.ndim != 3 or lr.shape[2] != 3 or lr.dtype != np.float32:
        raise ValueError(f"lr must be (H, W, 3) float32, got {lr.shape} {lr.dtype}")
    height, width = lr.shape[:2]
    m, s = int(backend.required_multiple), int(backend.scale)
    context = math.ceil(settings.context / m) * m
    feather = min(settings.feather, m, 2 * context) // 2 * 2
    tile = settings.tile
    if tile is None:
        budget = settings.budget_mb
        tile = DEFAULT_TILE if budget is None else tile_for_budget(budget, context, m)
    tile = max(m, tile // m * m)

    queue = deque(plan_tiles(height, width, tile, context, m, feather))
    warnings = []
    if (note := memory_warning(max(t.box.area for t in queue), backend.device)) is not None:
        warnings.append(note)
    first = queue[0].core
    cut_period = (first.height if first.height < height else 0,
                  first.width if first.width < width else 0)
    out = np.zeros((height * s, width * s, 3), dtype=np.float32)  # (sH, sW, 3)
    total = len(queue)
    done = splits = 0
    area_done = 0
    failed_area = math.inf  # smallest box area that ran out of memory
    while queue:
        if cancel is not None and cancel.is_set():
            raise Cancelled
        t = queue.popleft()
        if t.box.area >= failed_area and (parts := split_tile(t, context, m)):
            queue.extendleft(reversed(parts))
            total += len(parts) - 1
            splits += 1
            continue
        hr = _run(backend, lr, t, seed)
        if hr is None:  # out of memory
            parts = split_tile(t, context, m)
            if not parts:
                raise MemoryError(
                    f"not enough memory for a {t.box.width}x{t.box.height} tile, the smallest"
                )
            failed_area = min(failed_area, t.box.area)
            queue.extendleft(reversed(parts))
            total += len(parts) - 1
            splits += 1
            continue
        _accumulate(out, hr, t, feather, s)
        del hr
        release_free_memory()
        done += 1
        area_done += t.core.area
        if progress is not None:
            progress(area_done / (height * width), done, total)
    if splits:
        warnings.append(f"memory ran out on {splits} tile(s), which were split and redone: "
                        "this output can differ slightly from a run with more free memory")
    return TiledImage(out, tile, context, feather, done, splits, cut_period, warnings)


def _run(backend, lr: np.ndarray, t: Tile, seed: int) -> np.ndarray | None:
    """Upscale one box: (1, 3, s*h, s*w) float32, or ``None`` when memory ran out."""
    b = t.box
    x = np.ascontiguousarray(lr[b.top : b.bottom, b.left : b.right].transpose(2, 0, 1)[None])
    try:
        return np.asarray(backend.upscale(x, top=b.top, left=b.left, seed=seed))
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
    if str(backend.device).startswith("cuda"):  # a CUDA backend has loaded torch
        sys.modules["torch"].cuda.empty_cache()
    return None


def _accumulate(out: np.ndarray, hr: np.ndarray, t: Tile, feather: int, s: int) -> None:
    """``out[region] += w * hr[region]`` for the tile's weighted region (output pixels)."""
    region, w = tile_weights(t, feather, s)
    y0, x0 = t.box.top * s, t.box.left * s
    src = hr[0].transpose(1, 2, 0)  # (s*h, s*w, 3) view
    src = src[region.top - y0 : region.bottom - y0, region.left - x0 : region.right - x0]
    out[region.top : region.bottom, region.left : region.right] += src * w
