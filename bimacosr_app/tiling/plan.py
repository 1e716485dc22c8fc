"""Tile plans and feather weights, in LR pixel coordinates.

Every tile has a *core* and a *box*. The cores partition the image; the box is the core grown
by ``context`` pixels on each side (clipped to the image) and is what the backend reads.
Invariants (checked by :func:`plan_tiles`):

* every core and box origin is a multiple of ``multiple`` (the backend's
  ``required_multiple``), so a tile sees the same padding, downsampling phase and attention
  windows as the whole image;
* ``feather`` is even, ``feather <= multiple`` and ``feather <= 2 * context``: the blend ramp
  around a cut reaches ``feather / 2`` pixels into the neighbour's core, which must lie
  inside this tile's box;
* the 2-D weight of a tile is ``wy(y) * wx(x)``; along an axis it ramps linearly from 0 to 1
  over ``feather * scale`` output pixels centred on each cut shared with a neighbour, and is
  1 elsewhere in the core. Cuts are at least ``multiple >= feather`` apart, so the ramps of
  neighbouring cuts never overlap and the weights of all tiles sum to 1 at every output pixel.

Splitting a core into sub-cores (:func:`split_tile`, used after an out-of-memory error) keeps
the cuts the parent shared with its neighbours, so the sub-tiles' weights sum to the parent's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Box", "Tile", "axis_weights", "plan_tiles", "split_tile", "tile_weights"]


@dataclass(frozen=True)
class Box:
    """A half-open rectangle ``[top, bottom) x [left, right)`` in pixels."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def area(self) -> int:
        return self.height * self.width


@dataclass(frozen=True)
class Tile:
    """A tile of an ``image_height x image_width`` LR image.

    ``core``: the region this tile is responsible for; ``box``: the region it reads, the core
    grown by the context and clipped to the image.
    """

    core: Box
    box: Box
    image_height: int
    image_width: int


def _axis_cores(n: int, tile: int, multiple: int) -> list[tuple[int, int]]:
    """Balanced cores along an axis of ``n`` pixels: at most ``tile`` long, starts aligned."""
    if n <= tile:
        return [(0, n)]
    size = math.ceil(math.ceil(n / math.ceil(n / tile)) / multiple) * multiple
    return [(a, min(n, a + size)) for a in range(0, n, size)]


def _grow(a: int, b: int, n: int, context: int) -> tuple[int, int]:
    return max(0, a - context), min(n, b + context)


def _make_tile(core: Box, height: int, width: int, context: int) -> Tile:
    top, bottom = _grow(core.top, core.bottom, height, context)
    left, right = _grow(core.left, core.right, width, context)
    return Tile(core, Box(top, left, bottom, right), height, width)


def _check(multiple: int, context: int, feather: int) -> None:
    if multiple < 1 or context < 0 or feather < 0:
        raise ValueError("multiple must be positive, context and feather non-negative")
    if context % multiple:
        raise ValueError(f"context {context} must be a multiple of {multiple}")
    if feather % 2 or feather > multiple or feather > 2 * context:
        raise ValueError(
            f"feather {feather} must be even, at most the multiple {multiple} and at most "
            f"twice the context {context}"
        )


def plan_tiles(
    height: int, width: int, tile: int, context: int, multiple: int, feather: int = 0
) -> list[Tile]:
    """Tiles covering an LR image, row by row.

    Args:
        height, width: LR image size.
        tile: largest core side (rounded down to a multiple of ``multiple``, at least one
            multiple); an image that fits gets a single tile, with no seams at all.
        context: pixels read beyond the core on each side (a multiple of ``multiple``).
        multiple: the backend's ``required_multiple``.
        feather: blend width in LR pixels, validated against the invariants above.
    """
    _check(multiple, context, feather)
    if height < 1 or width < 1:
        raise ValueError(f"empty image {width}x{height}")
    tile = max(multiple, tile // multiple * multiple)
    return [
        _make_tile(Box(top, left, bottom, right), height, width, context)
        for top, bottom in _axis_cores(height, tile, multiple)
        for left, right in _axis_cores(width, tile, multiple)
    ]


def split_tile(tile: Tile, context: int, multiple: int) -> list[Tile]:
    """Split a tile's core in two along each axis longer than ``multiple`` (2 or 4 tiles).

    Returns ``[]`` when the core is at most one multiple on both sides (nothing to split).
    """
    core = tile.core

    def halves(a: int, b: int) -> list[tuple[int, int]]:
        if b - a <= multiple:
            return [(a, b)]
        mid = a + math.ceil((b - a) / 2 / multiple) * multiple
        return [(a, mid), (mid, b)]

    rows, cols = halves(core.top, core.bottom), halves(core.left, core.right)
    if len(rows) == len(cols) == 1:
        return []
    return [
        _make_tile(Box(t, l, b, r), tile.image_height, tile.image_width, context)
        for t, b in rows
        for l, r in cols
    ]


def axis_weights(a: int, b: int, n: int, feather: int, scale: int) -> tuple[int, np.ndarray]:
    """1-D blend weights of the core ``[a, b)`` of an axis of ``n`` LR pixels.

    Returns ``(start, w)``: output pixels ``start .. start + len(w)`` get weights ``w``
    (float32, in ``(0, 1]``), every other output pixel weight 0. Weights are evaluated at
    output pixel centres, so the rising ramp at a cut and its neighbour's falling ramp add
    up to exactly 1.
    """
    half = feather * scale // 2
    lo = max(0, a * scale - half) if a > 0 else 0
    hi = min(n * scale, b * scale + half) if b < n else n * scale
    x = np.arange(lo, hi, dtype=np.float64) + 0.5
    w = np.ones(hi - lo, dtype=np.float64)
    if half:
        if a > 0:
            w *= np.clip((x - (a * scale - half)) / (2 * half), 0.0, 1.0)
        if b < n:
            w *= 1.0 - np.clip((x - (b * scale - half)) / (2 * half), 0.0, 1.0)
    return lo, w.astype(np.float32)


def tile_weights(tile: Tile, feather: int, scale: int) -> tuple[Box, np.ndarray]:
    """2-D weights of a tile in output pixels: ``(region, w)`` with ``w`` (h, w, 1) float32.

    ``region`` lies inside the scaled box; outside it the tile's weight is 0.
    """
    core = tile.core
    y0, wy = axis_weights(core.top, core.bottom, tile.image_height, feather, scale)
    x0, wx = axis_weights(core.left, core.right, tile.image_width, feather, scale)
    region = Box(y0, x0, y0 + len(wy), x0 + len(wx))
    return region, (wy[:, None] * wx[None, :])[..., None]
