"""NumPy reference packing of sign bits (the packed checkpoint's and the kernels' bit rule).

Bit rule: the LAST axis of length ``n`` is packed into ``ceil(n / 64)`` 64-bit little-endian
words; bit ``j`` of word ``w`` is the sign of element ``64 * w + j``: 1 = negative (``x < 0``),
0 = non-negative. ``sign(0) = +1``, so 0 (and -0.0) pack as bit 0; pad bits beyond ``n`` are 0.
Weights of a k x k conv ``W[Cout, Cin, kh, kw]`` are packed from ``W.transpose(0, 2, 3, 1)``,
giving ``uint64[Cout, kh, kw, ceil(Cin / 64)]``; NHWC activations pack to
``uint64[N, H, W, ceil(C / 64)]``. The compiled kernels (``bimacosr_app._bitkernels``) use
exactly this rule, and the tests check both against each other.
"""

from __future__ import annotations

import numpy as np

__all__ = ["num_words", "pack_signs", "unpack_signs"]


def num_words(n: int) -> int:
    """Number of 64-bit words holding ``n`` sign bits."""
    return (int(n) + 63) // 64


def pack_signs(a: np.ndarray) -> np.ndarray:
    """Pack the signs of ``a`` along its last axis: ``uint64[..., ceil(n / 64)]``."""
    a = np.asarray(a)
    if a.ndim == 0:
        raise ValueError("pack_signs needs at least one axis")
    *lead, n = a.shape
    cw = num_words(n)
    neg = np.zeros((*lead, cw * 64), dtype=bool)
    neg[..., :n] = a < 0
    # little bit order: element 8*b + i of a 64-group is bit i of byte b; little-endian words.
    packed = np.packbits(neg.reshape(*lead, cw, 64), axis=-1, bitorder="little")
    words = np.ascontiguousarray(packed).view("<u8").reshape(*lead, cw)
    return words.astype(np.uint64, copy=False)


def unpack_signs(words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack_signs`: ``float32[..., n]`` of +1 / -1 (bit 1 = -1)."""
    words = np.asarray(words)
    if words.dtype == np.int64:
        words = words.view(np.uint64)
    if words.dtype != np.uint64:
        raise TypeError(f"words must be uint64 (or int64), got {words.dtype}")
    if words.ndim == 0:
        raise ValueError("unpack_signs needs at least one axis")
    *lead, cw = words.shape
    if cw != num_words(n):
        raise ValueError(f"{cw} words cannot hold exactly {n} signs (need {num_words(n)})")
    raw = np.ascontiguousarray(words.astype("<u8", copy=False)).view(np.uint8)
    bits = np.unpackbits(raw.reshape(*lead, cw * 8), axis=-1, bitorder="little")[..., :n]
    return (1.0 - 2.0 * bits).astype(np.float32)
