"""The engine thread: one ``QThread`` whose worker owns the model and runs the jobs.

:class:`Engine` (UI thread) starts the thread and talks to :class:`EngineWorker` (engine
thread) only through queued signals; results come back the same way, so the UI thread never
waits on the model. The worker imports the engine and jobs packages itself (torch takes
seconds to import), loads the model lazily on the first job or calibration (``loading`` /
``modelReady``) and keeps it for the next jobs while backend and device stay the same.

Cancellation is cooperative: each job gets its own ``threading.Event``, which the jobs layer
checks between tiles. :meth:`Engine.shutdown` cancels, stops the thread and waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from .queue_model import Status

__all__ = ["Engine", "JobOutcome", "JobSpec", "ModelInfo"]

log = logging.getLogger(__name__)

CALIBRATION_SIDE = 128  # LR pixels a side of the timed calibration upscale


@dataclass(frozen=True)
class JobSpec:
    """What to do with one queue item (turned into a jobs ``UpscaleRequest`` by the worker)."""

    input: Path
    output_folder: Path | None  #: None: next to the input
    naming: str
    scale: int
    format: str
    quality: int
    strip_metadata: bool
    on_exists: str
    backend: str
    device: str  #: "auto", "cpu" or "cuda"
    tile_budget_mb: float | None  #: tile memory budget; None: chosen from the device
    seed: int = 0


@dataclass(frozen=True)
class ModelInfo:
    backend: str  #: resolved name ("reference", "cpu-packed", "cuda")
    device: str
    sha256: str
    load_seconds: float


@dataclass(frozen=True)
class JobOutcome:
    status: Status  #: DONE, FAILED, SKIPPED or CANCELLED
    output: Path | None = None
    out_size: tuple[int, int] | None = None
    seconds: float = 0.0
    error: str = ""
    backend: str = ""
    model: str = ""
    tiles: str = ""
    #: output pixels between tile cuts along (rows, columns); 0: no cut on that axis
    seam_period: tuple[int, int] = (0, 0)


#: ``factory(backend_name, device_or_None) -> Backend``; the default is the engine's
#: ``select_backend`` with the bundled model.
BackendFactory = Callable[[str, str | None], object]


class EngineWorker(QObject):
    """Lives in the engine thread. Its slots run there, one at a time, in call order."""

    # available backend names, what "auto" resolves to, automatic tile budget (MB) on the CPU
    initialized = Signal(list, str, float)
    loading = Signal(str)  # backend name being loaded
    modelReady = Signal(object)  # ModelInfo
    progress = Signal(str, float, int, int, object)  # id, fraction, tiles done, total, eta s
    jobDone = Signal(str, object)  # id, JobOutcome
    calibrated = Signal(str, float)  # resolved backend name, seconds per output megapixel
    engineError = Signal(str)  # a calibration or an explicit model load failed

    def __init__(self, factory: BackendFactory | None, stopping: threading.Event) -> None:
        super().__init__()
        self._factory = factory
        self._stopping = stopping
        self._backend = None
        self._key: tuple[str, str] | None = None
        self._info: ModelInfo | None = None

    @Slot()
    def initialize(self) -> None:
        from ..engine import available_backends
        from ..tiling import default_budget_mb

        available = available_backends()
        self.initialized.emit(available, available[0] if available else "reference",
                              default_budget_mb("cpu"))

    def _ensure_backend(self, name: str, device: str):
        if self._backend is not None and self._key == (name, device):
            return self._backend
        self._backend = self._info = None  # release the previous model first
        self.loading.emit(name)
        start = time.perf_counter()
        dev = None if device == "auto" else device
        if self._factory is None:
            from ..engine import select_backend

            backend = select_backend(name, device=dev)
        else:
            backend = self._factory(name, dev)
        self._backend, self._key = backend, (name, device)
        self._info = ModelInfo(
            backend=backend.name, device=str(backend.device),
            sha256=backend.checkpoint.content_sha256,
            load_seconds=time.perf_counter() - start)
        self.modelReady.emit(self._info)
        return backend

    @Slot(str, str)
    def load(self, name: str, device: str) -> None:
        """Load the model now (for the About dialog)."""
        try:
            self._ensure_backend(name, device)
        except Exception as exc:  # any failure must reach the user, not kill the thread
            self.engineError.emit(f"Could not load the model: {exc}")

    @Slot(str, str)
    def calibrate(self, name: str, device: str) -> None:
        """Time one small upscale (after a warm-up) and report seconds per output MP."""
        import torch

        try:
            backend = self._ensure_backend(name, device)
            if self._stopping.is_set():
                return
            gen = torch.Generator().manual_seed(0)
            m = backend.required_multiple
            backend.upscale(torch.rand(1, 3, m, m, generator=gen))  # warm-up
            lr = torch.rand(1, 3, CALIBRATION_SIDE, CALIBRATION_SIDE, generator=gen)
            start = time.perf_counter()
            backend.upscale(lr)
            seconds = time.perf_counter() - start
        except Exception as exc:  # any failure must reach the user, not kill the thread
            log.exception("calibration failed")
            self.engineError.emit(str(exc))
            return
        out_mp = (CALIBRATION_SIDE * backend.scale) ** 2 / 1e6
        self.calibrated.emit(backend.name, seconds / out_mp)

    @Slot(str, object, object)
    def run_job(self, item_id: str, spec: JobSpec, cancel: threading.Event) -> None:
        if cancel.is_set():
            self.jobDone.emit(item_id, JobOutcome(Status.CANCELLED))
            return
        try:
            backend = self._ensure_backend(spec.backend, spec.device)
        except Exception as exc:  # any failure must reach the user, not kill the thread
            log.exception("model loading failed")
            self.jobDone.emit(item_id, JobOutcome(Status.FAILED,
                                                  error=f"Could not load the model: {exc}"))
            return
        self.jobDone.emit(item_id, self._run(item_id, spec, backend, cancel))

    def _run(self, item_id: str, spec: JobSpec, backend, cancel: threading.Event) -> JobOutcome:
        from ..jobs import UpscaleRequest, run_request

        def on_progress(p) -> None:
            self.progress.emit(item_id, p.fraction, p.tiles_done, p.tiles_total, p.eta_s)

        start = time.perf_counter()
        try:
            request = UpscaleRequest(
                input=spec.input, output=spec.output_folder, scale=spec.scale,
                format=spec.format, quality=spec.quality, strip_metadata=spec.strip_metadata,
                tile_budget_mb=spec.tile_budget_mb, on_exists=spec.on_exists,
                naming=spec.naming, seed=spec.seed)
            result = run_request(request, backend, progress=on_progress, cancel=cancel)
        except Exception as exc:  # any failure must reach the user, not kill the thread
            log.exception("job failed")
            return JobOutcome(Status.FAILED, error=str(exc) or type(exc).__name__,
                              seconds=time.perf_counter() - start)
        return JobOutcome(
            status=Status(result.status), output=result.output,
            out_size=result.output_size, seconds=result.seconds, error=result.error or "",
            backend=f"{backend.name} on {backend.device}", model=self._info.sha256,
            tiles=_describe_tiles(result.details.get("tiling")),
            seam_period=_seam_period(result.details.get("tiling"), spec.scale))


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


class Engine(QObject):
    """The UI thread's handle on the engine thread. Re-emits the worker's signals."""

    initialized = Signal(list, str, float)
    loading = Signal(str)
    modelReady = Signal(object)
    progress = Signal(str, float, int, int, object)
    jobDone = Signal(str, object)
    calibrated = Signal(str, float)
    engineError = Signal(str)

    _initialize = Signal()
    _load = Signal(str, str)
    _calibrate = Signal(str, str)
    _run = Signal(str, object, object)

    def __init__(self, factory: BackendFactory | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("bimacosr-engine")
        self._stopping = threading.Event()
        self.worker = EngineWorker(factory, self._stopping)
        self.worker.moveToThread(self.thread)
        self._cancel = threading.Event()
        for name in ("initialized", "loading", "modelReady", "progress", "jobDone",
                     "calibrated", "engineError"):
            getattr(self.worker, name).connect(getattr(self, name))
        self._initialize.connect(self.worker.initialize)
        self._load.connect(self.worker.load)
        self._calibrate.connect(self.worker.calibrate)
        self._run.connect(self.worker.run_job)

    def start(self) -> None:
        """Start the engine thread (it imports the engine and reports what is available)."""
        self.thread.start()
        self._initialize.emit()

    def submit(self, item_id: str, spec: JobSpec) -> None:
        """Queue a job; :meth:`cancel_current` cancels the latest one submitted."""
        self._cancel = threading.Event()
        self._run.emit(item_id, spec, self._cancel)

    def cancel_current(self) -> None:
        self._cancel.set()

    def load(self, backend: str, device: str) -> None:
        self._load.emit(backend, device)

    def calibrate(self, backend: str, device: str) -> None:
        self._calibrate.emit(backend, device)

    def shutdown(self) -> None:
        """Cancel the running job, stop the thread and wait for it to end (a model being
        loaded finishes loading first)."""
        self._stopping.set()
        self._cancel.set()
        self.thread.quit()
        self.thread.wait()
