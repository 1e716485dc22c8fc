"""The engine thread: one ``QThread`` whose worker runs a
:class:`bimacosr_app.jobs.EngineSession` (the model, calibration and jobs).

:class:`Engine` (UI thread) starts the thread and talks to :class:`EngineWorker` (engine
thread) only through queued signals; results come back the same way, so the UI thread never
waits on the model. The session loads the engine (the backend, and torch where it needs it) and the
model lazily, on the first job or calibration (``loading`` / ``modelReady``), and keeps it for
the next jobs while backend and device stay the same.

Cancellation is cooperative: each job gets its own ``threading.Event``, which the jobs layer
checks between tiles. :meth:`Engine.shutdown` cancels, stops the thread and waits for it.
"""

from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..jobs import BackendFactory, EngineSession, Job, JobOutcome, Status, engine_facts

__all__ = ["Engine"]

log = logging.getLogger(__name__)


class EngineWorker(QObject):
    """Lives in the engine thread. Its slots run there, one at a time, in call order."""

    # available backend names, what "auto" resolves to, automatic tile budget (MB) on the CPU
    initialized = Signal(list, str, float)
    loading = Signal(str)  # backend name being loaded
    modelReady = Signal(object)  # jobs.ModelInfo
    progress = Signal(str, float, int, int, object)  # id, fraction, tiles done, total, eta s
    jobDone = Signal(str, object)  # id, jobs.JobOutcome
    calibrated = Signal(str, float)  # resolved backend name, seconds per output megapixel
    engineError = Signal(str)  # a calibration or an explicit model load failed

    def __init__(self, factory: BackendFactory | None, stopping: threading.Event) -> None:
        super().__init__()
        self._session = EngineSession(factory)
        self._stopping = stopping

    @Slot()
    def initialize(self) -> None:
        facts = engine_facts()
        self.initialized.emit(facts.available, facts.auto, facts.cpu_budget_mb)

    def _backend(self, name: str, device: str):
        return self._session.backend(name, device, self.loading.emit, self.modelReady.emit)

    @Slot(str, str)
    def load(self, name: str, device: str) -> None:
        """Load the model now (for the About dialog)."""
        try:
            self._backend(name, device)
        except Exception as exc:  # any failure must reach the user, not kill the thread
            log.exception("model loading failed")
            self.engineError.emit(f"Could not load the model: {exc}")

    @Slot(str, str)
    def calibrate(self, name: str, device: str) -> None:
        """Time one small upscale and report seconds per output MP."""
        try:
            backend = self._backend(name, device)
            if self._stopping.is_set():
                return
            seconds_per_mp = self._session.calibrate(backend)
        except Exception as exc:  # any failure must reach the user, not kill the thread
            log.exception("calibration failed")
            self.engineError.emit(str(exc))
            return
        self.calibrated.emit(backend.name, seconds_per_mp)

    @Slot(str, object, object)
    def run_job(self, item_id: str, job: Job, cancel: threading.Event) -> None:
        if cancel.is_set():
            self.jobDone.emit(item_id, JobOutcome(Status.CANCELLED))
            return
        try:
            backend = self._backend(job.backend, job.device)
        except Exception as exc:  # any failure must reach the user, not kill the thread
            log.exception("model loading failed")
            self.jobDone.emit(item_id, JobOutcome(Status.FAILED,
                                                  error=f"Could not load the model: {exc}"))
            return
        self.jobDone.emit(item_id, self._session.run(
            job, backend, cancel,
            lambda p: self.progress.emit(item_id, p.fraction, p.tiles_done, p.tiles_total,
                                         p.eta_s)))


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

    def submit(self, item_id: str, job: Job) -> None:
        """Queue a job; :meth:`cancel_current` cancels the latest one submitted."""
        self._cancel = threading.Event()
        self._run.emit(item_id, job, self._cancel)

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
