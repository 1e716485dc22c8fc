"""The packed model's CPU runtime: NumPy arrays and the native kernels, no torch.

:class:`PackedNetwork` runs a validated packed checkpoint (``checkpoint.load_packed``, which
reads it without torch) through the one-step pipeline; it is the ``cpu-packed`` engine
backend's network. Nothing in this package imports torch (tests/test_runtime.py checks it);
the torch model (``model``) stays the training form and the parity oracle.
"""

from .network import PackedNetwork

__all__ = ["PackedNetwork"]
