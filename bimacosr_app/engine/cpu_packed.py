"""The ``cpu-packed`` backend: the packed checkpoint on NumPy and the native XNOR-popcount
kernels, without torch (``bimacosr_app.runtime``), float32 on the CPU.

The kernels run on their own thread pool (``bimacosr_app._bitkernels.set_num_threads``; default
the machine's core count), or on the OpenMP team of a process that has already loaded one
(kernels/README.md, "Threads").
"""

from __future__ import annotations

from ..checkpoint.load import PackedCheckpoint
from ..native import kernels_status, load_kernels
from ..runtime import PackedNetwork
from .backends import Backend, register_backend

__all__ = ["CpuPackedBackend"]


@register_backend
class CpuPackedBackend(Backend):
    """``cpu-packed``: :class:`~bimacosr_app.runtime.PackedNetwork` of the checkpoint."""

    name = "cpu-packed"

    def __init__(self, checkpoint: PackedCheckpoint, device="cpu"):
        if str(device).split(":")[0] != "cpu":
            raise ValueError(f"the cpu-packed backend runs on the CPU, not {device}")
        super().__init__(checkpoint, "cpu")
        self.network = PackedNetwork(checkpoint)

    @classmethod
    def unavailable_reason(cls) -> str:
        if load_kernels() is not None:
            return ""
        return f"the compiled kernels ({kernels_status()['reason'] or 'not built'})"

    def _upscale(self, lr01, top, left, seed):
        return self.network.upscale(lr01, top, left, seed)
