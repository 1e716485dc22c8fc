"""The queue runner's Qt face: :class:`bimacosr_app.jobs.QueueRunner` (the states, the order,
cancel, totals and the batch summary) driving the engine thread, with its reports turned into
Qt signals. The engine thread's reports reach it on the UI thread (queued signals)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from ..jobs import Job, JobOutcome, QueueItem, Status
from ..jobs import QueueRunner as CoreRunner
from .queue_model import QueueModel
from .worker import Engine

__all__ = ["QueueRunner"]


class _EngineExecutor:
    """Submits the runner's items to the engine thread as jobs."""

    def __init__(self, engine: Engine, job_for: Callable[[QueueItem], Job],
                 failed: Callable[[str, JobOutcome], None]) -> None:
        self.engine, self._job_for, self._failed = engine, job_for, failed

    def submit(self, item: QueueItem) -> None:
        try:
            job = self._job_for(item)
        except ValueError as exc:  # settings no job accepts: the item fails with the reason
            self._failed(item.id, JobOutcome(Status.FAILED, error=str(exc)))
            return
        self.engine.submit(item.id, job)

    def cancel_current(self) -> None:
        self.engine.cancel_current()


class QueueRunner(QObject):
    """``stateChanged()`` when running/pausing change; ``totalProgress(fraction, eta)``
    (fraction -1 when idle); ``batchFinished(BatchSummary)``."""

    stateChanged = Signal()
    totalProgress = Signal(float, object)
    batchFinished = Signal(object)

    def __init__(self, model: QueueModel, engine: Engine, job_for: Callable[[QueueItem], Job],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.core = CoreRunner(
            model.queue, _EngineExecutor(engine, job_for, self._on_done),
            update=model.update_item, state_changed=self.stateChanged.emit,
            total_progress=self.totalProgress.emit, batch_finished=self.batchFinished.emit)
        engine.progress.connect(lambda item_id, fraction, _done, _total, eta:
                                self.core.on_progress(item_id, fraction, eta))
        engine.jobDone.connect(self._on_done)
        engine.loading.connect(lambda _backend: self.core.on_stage("Loading model…"))
        engine.modelReady.connect(lambda _info: self.core.on_stage(""))

    def _on_done(self, item_id: str, outcome: JobOutcome) -> None:
        self.core.on_done(item_id, outcome)

    @property
    def running(self) -> bool:
        return self.core.running

    @property
    def pausing(self) -> bool:
        return self.core.pausing

    @property
    def current(self) -> str | None:
        return self.core.current

    def start(self) -> None:
        self.core.start()

    def set_pause_after_current(self, on: bool) -> None:
        self.core.set_pause_after_current(on)

    def cancel_current(self) -> None:
        self.core.cancel_current()

    def cancel_all(self) -> None:
        self.core.cancel_all()
