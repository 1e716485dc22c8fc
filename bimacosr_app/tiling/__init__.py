"""Tiled upscaling: aligned tiles with context, feathered stitching, memory budget.

``upscale_image(backend, lr)`` is the entry point: it plans tiles aligned to the backend's
``required_multiple`` (:mod:`.plan`), of a fixed default size or the size a budget the user sets
gives (:mod:`.memory`; never from the free memory, so the output does not depend on it),
upscales each at its absolute LR position (so the position-derived diffusion noise matches a
whole-image run) and adds it into a float32 output with weights that sum to 1
(:mod:`.stitch`). A tile that runs out of memory is split and redone on its own.
"""

from .memory import (
    BYTES_PER_LR_PIXEL,
    DEFAULT_BUDGET_MB,
    DEFAULT_TILE,
    TILE_OVERHEAD_BYTES,
    available_ram_bytes,
    box_memory_mb,
    default_budget_mb,
    free_memory_mb,
    is_out_of_memory,
    memory_warning,
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
    "DEFAULT_BUDGET_MB",
    "DEFAULT_CONTEXT",
    "DEFAULT_FEATHER",
    "DEFAULT_TILE",
    "TILE_OVERHEAD_BYTES",
    "Box",
    "Cancelled",
    "Tile",
    "TileSettings",
    "TiledImage",
    "available_ram_bytes",
    "axis_weights",
    "box_memory_mb",
    "default_budget_mb",
    "free_memory_mb",
    "is_out_of_memory",
    "memory_warning",
    "plan_tiles",
    "split_tile",
    "tile_for_budget",
    "tile_weights",
    "upscale_image",
]
