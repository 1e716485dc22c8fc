"""Timing on a CUDA device, shared by the GPU benchmarks."""

from __future__ import annotations

import statistics
import time

import torch

__all__ = ["cuda_median_ms"]


def cuda_median_ms(fn, repeats: int, warmup: int) -> float:
    """Median wall time of ``fn()`` in ms over ``repeats`` calls after ``warmup`` calls, with
    the device synchronised before and after each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
