"""The default tile size, tile sizes from a memory budget, memory warnings, and recognising
out-of-memory errors.

The default tiling is fixed (:data:`DEFAULT_TILE`): tile sizes change the output slightly (a
1-bit model's signs flip under the rounding a cut changes, tests/test_tiling.py), so a size that
followed the free memory would give different pixels for the same command on machines, or at
moments, with different free memory. Free memory is only compared with what a tile needs, for a
warning (:func:`memory_warning`); a tile that really runs out of memory is split (stitch.py),
which the result reports. A budget the user sets (``--tile-budget``) gives its own fixed size
(:func:`tile_for_budget`).

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
    "DEFAULT_BUDGET_MB",
    "DEFAULT_TILE",
    "TILE_OVERHEAD_BYTES",
    "available_ram_bytes",
    "box_memory_mb",
    "default_budget_mb",
    "free_memory_mb",
    "is_out_of_memory",
    "memory_warning",
    "release_free_memory",
    "tile_for_budget",
]

#: Peak working memory of one backend call per LR pixel of its input box (see above).
BYTES_PER_LR_PIXEL = 3584
#: Peak working memory of one backend call besides the per-pixel part (see above).
TILE_OVERHEAD_BYTES = 128 << 20

#: What the default tile needs by the model above: a 384-pixel core with 64 pixels of context
#: on each side, a 512² box (keeps a 24-megapixel output under 2 GB of peak RSS on
#: ``reference``: about 400 MB for torch and the model, 288 MB float32 output, one tile).
DEFAULT_BUDGET_MB = 1024
#: The default core side in LR pixels, the same on every machine and device (the largest that
#: fits :data:`DEFAULT_BUDGET_MB` with the default context of 64 at the model's multiple of 64).
DEFAULT_TILE = 384

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


def default_budget_mb(device=None) -> float:
    """The memory the default tiling needs (:data:`DEFAULT_BUDGET_MB`), on any ``device``: it
    does not follow the free memory (see the module's docstring)."""
    return float(DEFAULT_BUDGET_MB)


def free_memory_mb(device) -> float | None:
    """Memory free for tiles on ``device`` (a name, "cpu" or "cuda:0", or a torch.device), MB:
    the free VRAM on CUDA (``torch.cuda.mem_get_info``; only a CUDA device imports torch), the
    available RAM otherwise; ``None`` when unknown."""
    if str(device).startswith("cuda"):
        try:
            import torch

            free, _total = torch.cuda.mem_get_info(torch.device(device))
        except Exception:  # a reading only: none means no warning
            return None
        return free / _MB
    available = available_ram_bytes()
    return None if available is None else available / _MB


def box_memory_mb(pixels: int) -> float:
    """What one backend call on a box of ``pixels`` LR pixels needs by the model above, MB."""
    return (TILE_OVERHEAD_BYTES + BYTES_PER_LR_PIXEL * pixels) / _MB


def memory_warning(box_pixels: int, device) -> str | None:
    """A warning when the largest box of a plan (``box_pixels`` LR pixels) needs more than
    ``device`` has free now, else ``None``. The tiles stay as planned either way."""
    need, free = box_memory_mb(box_pixels), free_memory_mb(device)
    if free is None or need <= free:
        return None
    return (f"a tile may need about {need:.0f} MB and {free:.0f} MB is free on {device}: if "
            "memory runs out, tiles are split and the output can differ slightly from a run "
            "with more free memory (close other programs, or set a smaller tile budget)")


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
