"""Tiled upscaling: aligned tiles with context, feathered stitching, memory budget.

``upscale_image(backend, lr)`` is the entry point: it plans tiles aligned to the backend's
``required_multiple`` (:mod:`.plan`), sizes them from a memory budget (:mod:`.memory`),
upscales each at its absolute LR position (so the position-derived diffusion noise matches a
whole-image run) and adds it into a float32 output with weights that sum to 1
(:mod:`.stitch`). A tile that runs out of memory is split and redone on its own.
"""

from .memory import (
    BYTES_PER_LR_PIXEL,
    DEFAULT_CPU_BUDGET_MB,
    TILE_OVERHEAD_BYTES,
    available_ram_bytes,
    default_budget_mb,
    is_out_of_memory,
    tile_for_budget,
)
from .plan import Box, Tile, axis_weights, plan_tiles, split_tile, tile_weights
from .stitch import (
    DEFAULT_CONTEXT,
    DEFAULT_FEATHER,
    Cancelled,
    TiledImage,
    TileSettings,
    upscale_image,
)

__all__ = [
    "BYTES_PER_LR_PIXEL",
    "DEFAULT_CONTEXT",
    "DEFAULT_CPU_BUDGET_MB",
    "DEFAULT_FEATHER",
    "TILE_OVERHEAD_BYTES",
    "Box",
    "Cancelled",
    "Tile",
    "TileSettings",
    "TiledImage",
    "available_ram_bytes",
    "axis_weights",
    "default_budget_mb",
    "is_out_of_memory",
    "plan_tiles",
    "split_tile",
    "tile_for_budget",
    "tile_weights",
    "upscale_image",
]
