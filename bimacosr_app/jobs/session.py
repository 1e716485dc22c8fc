"""The engine room of an interactive session (the window), without Qt: a model kept loaded
between jobs, a timed calibration for the first estimates, and a queue item run as one
:class:`~.request.UpscaleRequest` through :func:`~.run.run_request`, its result turned into a
:class:`~.queue.JobOutcome` with the job's speed (:class:`~.queue.SpeedSample`), which refines
the estimates. ``gui.worker`` runs an :class:`EngineSession` on its engine
thread; importing this module costs nothing (the engine loads on first use, and torch only
for a backend that runs on it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .queue import JobOutcome, SpeedSample
from .request import Progress, UpscaleRequest

__all__ = ["BackendFactory", "EngineFacts", "EngineSession", "Job", "ModelInfo", "backend_needs",
           "engine_facts"]

CALIBRATION_SIDE = 128  #: LR pixels a side of the timed calibration upscale

#: ``factory(backend_name, device_or_None) -> Backend``; the default is the engine's
#: ``select_backend`` with the bundled model.
BackendFactory = Callable[[str, str | None], object]


@dataclass(frozen=True)
class Job:
    """One queue item's work: the request, and the backend and device to run it on."""

    request: UpscaleRequest
    backend: str  #: a backend name or "auto"
    device: str  #: "auto", "cpu" or "cuda"


@dataclass(frozen=True)
class ModelInfo:
    backend: str  #: resolved name ("reference", "cpu-packed", "cuda")
    device: str
    sha256: str
    load_seconds: float


@dataclass(frozen=True)
class EngineFacts:
    available: list[str]  #: backend names usable here, best first
    auto: str  #: what "auto" resolves to
    cpu_budget_mb: float  #: the automatic tile budget on the CPU


def engine_facts() -> EngineFacts:
    """What this machine offers (imports the engine: seconds, the first time)."""
    from ..engine import available_backends
    from ..tiling import default_budget_mb

    available = available_backends()
    return EngineFacts(available, available[0] if available else "reference",
                       default_budget_mb("cpu"))


def backend_needs(name: str) -> str:
    """What backend ``name`` needs to run here and how to get it ("" when it runs), for the
    window's settings; finds it without importing torch (``engine.probe``)."""
    from ..engine import unavailable_reason

    return unavailable_reason(name)


class EngineSession:
    """Holds one model at a time, loaded on first use and kept while backend and device stay
    the same. Not thread-safe: one thread (the engine thread) calls it."""

    def __init__(self, factory: BackendFactory | None = None) -> None:
        self._factory = factory
        self._backend = None
        self._key: tuple[str, str] | None = None
        self.info: ModelInfo | None = None

    def backend(self, name: str, device: str,
                on_loading: Callable[[str], None] = lambda _name: None,
                on_loaded: Callable[[ModelInfo], None] = lambda _info: None):
        """The backend for (``name``, ``device``): the loaded one, or a new one
        (``on_loading(name)`` before, ``on_loaded(info)`` after; :attr:`info` describes it)."""
        if self._backend is not None and self._key == (name, device):
            return self._backend
        self._backend = self.info = None  # release the previous model first
        on_loading(name)
        start = time.perf_counter()
        dev = None if device == "auto" else device
        if self._factory is None:
            from ..engine import select_backend

            backend = select_backend(name, device=dev)
        else:
            backend = self._factory(name, dev)
        self._backend, self._key = backend, (name, device)
        self.info = ModelInfo(backend=backend.name, device=str(backend.device),
                              sha256=backend.checkpoint.content_sha256,
                              load_seconds=time.perf_counter() - start)
        on_loaded(self.info)
        return backend

    def calibrate(self, backend) -> float:
        """Seconds per output megapixel of ``backend``: one small upscale, timed after a
        warm-up (NumPy tiles: every backend takes them, and no torch is needed)."""
        import numpy as np

        rng = np.random.default_rng(0)
        m = backend.required_multiple
        backend.upscale(rng.random((1, 3, m, m), dtype=np.float32))  # warm-up
        lr = rng.random((1, 3, CALIBRATION_SIDE, CALIBRATION_SIDE), dtype=np.float32)
        start = time.perf_counter()
        backend.upscale(lr)
        seconds = time.perf_counter() - start
        return seconds / ((CALIBRATION_SIDE * backend.scale) ** 2 / 1e6)

    def run(self, job: Job, backend, cancel: threading.Event,
            progress: Callable[[Progress], None]) -> JobOutcome:
        """Run ``job`` on ``backend``; ``progress(Progress)`` after every tile. Failures come
        back as the outcome (``run_request`` turns every error into a failed result)."""
        from .run import run_request

        result = run_request(job.request, backend, progress=progress, cancel=cancel)
        tiling = result.details.get("tiling")
        speed = None
        if result.status == "done" and tiling and result.input_size:
            width, height = result.input_size
            speed = SpeedSample(backend.name, job.request.tile_budget_mb, tiling["tile"],
                                result.seconds, width * height * backend.scale**2)
        return JobOutcome.from_result(
            result, backend=f"{backend.name} on {backend.device}",
            model=self.info.sha256 if self.info else "",
            tiles=_describe_tiles(tiling), seam_period=_seam_period(tiling, job.request.scale),
            speed=speed)


def _seam_period(tiling: dict | None, scale: int) -> tuple[int, int]:
    """Output pixels between tile cuts, (rows, columns), from the tiling's LR cut period."""
    rows, cols = (tiling or {}).get("cut_period", (0, 0))
    return rows * scale, cols * scale


def _describe_tiles(tiling: dict | None) -> str:
    if not tiling:
        return ""
    n, side = tiling["tiles"], tiling["tile"]
    text = (f"{n} tile{'s' * (n != 1)} of up to {side}×{side} input pixels, "
            f"context {tiling['context']} px, feather {tiling['feather']} px")
    if tiling.get("splits"):
        text += f", {tiling['splits']} split after running out of memory"
    return text
