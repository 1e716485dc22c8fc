"""Tile size from a memory budget, and recognising out-of-memory errors.

The peak working memory of one backend call is modelled as ``TILE_OVERHEAD_BYTES +
BYTES_PER_LR_PIXEL * (LR pixels of its input box)``. Measured as the rise of the process's
peak RSS (``VmHWM``) over one call of the shipped model, in a fresh process per size, on CPU:

========  ==========  ==========  ==========  ==========  ==========
box       128²        256²        384²        512²        640²
========  ==========  ==========  ==========  ==========  ==========
reference 78 MB       308 MB      557 MB      963 MB      1436 MB
cpu-pack  —           222 MB      —           754 MB      1225 MB
========  ==========  ==========  ==========  ==========  ==========

A line through the reference points has a slope of 3.3 KB per pixel and an intercept of
about 90 MB; the constants below (3.5 KiB, 128 MiB) lie above every measurement, so a budget
bounds what a tile needs. ``reference`` (float32 torch) is the hungriest backend; ``cuda``
computes in half precision and needs less. (The ``cpu-pack`` row is the torch-assisted packed
network before the native runtime; the native ``cpu-packed`` needs far less: a whole 24 MP
output with 384-pixel tile cores peaks at 0.6 GB, docs/BENCHMARKS.md.)
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import sys

__all__ = [
    "BYTES_PER_LR_PIXEL",
    "DEFAULT_CPU_BUDGET_MB",
    "TILE_OVERHEAD_BYTES",
    "available_ram_bytes",
    "default_budget_mb",
    "is_out_of_memory",
    "release_free_memory",
    "tile_for_budget",
]

#: Peak working memory of one backend call per LR pixel of its input box (see above).
BYTES_PER_LR_PIXEL = 3584
#: Peak working memory of one backend call besides the per-pixel part (see above).
TILE_OVERHEAD_BYTES = 128 << 20

#: Largest automatic CPU budget: keeps a 24-megapixel output under 2 GB of peak RSS
#: (about 400 MB for torch and the model, 288 MB float32 output, one tile).
DEFAULT_CPU_BUDGET_MB = 1024

_MB = 1 << 20


def available_ram_bytes() -> int | None:
    """``MemAvailable`` from /proc/meminfo (Linux), else physical memory, else ``None``."""
    try:
        with open("/proc/meminfo") as fp:
            for line in fp:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def default_budget_mb(device) -> float:
    """Memory a tile may use on ``device`` (a name, "cpu" or "cuda:0", or a torch.device) when
    the user sets no budget.

    CUDA: 70 % of the free VRAM (``torch.cuda.mem_get_info``; only a CUDA device imports
    torch). CPU: half the available RAM, at most :data:`DEFAULT_CPU_BUDGET_MB`.
    """
    if str(device).startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return 0.7 * free / _MB
    available = available_ram_bytes()
    if available is None:
        return float(DEFAULT_CPU_BUDGET_MB)
    return min(float(DEFAULT_CPU_BUDGET_MB), 0.5 * available / _MB)


def tile_for_budget(budget_mb: float, context: int, multiple: int) -> int:
    """Largest core side (a multiple of ``multiple``, at least one) whose square box, the core
    plus ``context`` on each side, fits ``budget_mb`` by the model above."""
    side = math.isqrt(max(0, int((budget_mb * _MB - TILE_OVERHEAD_BYTES) / BYTES_PER_LR_PIXEL)))
    return max(multiple, (side - 2 * context) // multiple * multiple)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says that memory ran out (CUDA, CPU allocator or Python)."""
    torch = sys.modules.get("torch")  # torch's error can only come from a loaded torch
    if isinstance(exc, MemoryError) or (torch is not None
                                        and isinstance(exc, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@functools.cache
def _malloc_trim():
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only
    except (OSError, TypeError):  # TypeError: Windows has no CDLL(None)
        return None


def release_free_memory() -> None:
    """Give memory freed by the C allocator back to the system (glibc ``malloc_trim``).

    Called after every tile: glibc keeps the freed temporaries of a tile in fragmented arenas,
    so without it the resident memory grows tile after tile (measured on a 16-megapixel output
    with the reference backend: 1.6 GB resident after 9 tiles instead of 0.6 GB, and a peak
    of 1.8 GB instead of 1.6 GB). Elsewhere a no-op.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
