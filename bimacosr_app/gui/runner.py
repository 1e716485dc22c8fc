"""Runs the queue through the engine, one item at a time, in table order.

States: idle -> running (a batch) -> idle again when nothing is queued; "pause after
current" lets the running item finish and then stops (Start resumes). Cancel current stops
the running item between two tiles; cancel all also marks every queued item cancelled.

Total progress weighs every item of the batch by its output pixels; the ETA is the running
item's ETA plus the estimates of the queued ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from .queue_model import QueueItem, QueueModel, Status
from .worker import Engine, JobOutcome, JobSpec

__all__ = ["BatchSummary", "QueueRunner", "estimate_memory_mb", "estimate_seconds"]


def estimate_seconds(item: QueueItem, seconds_per_mp: float | None) -> float | None:
    """Time to upscale ``item``: the model always works at 4x (2x/3x downscale afterwards)."""
    if seconds_per_mp is None or item.in_size is None:
        return None
    return seconds_per_mp * item.in_size[0] * item.in_size[1] * 16 / 1e6


def estimate_memory_mb(item: QueueItem, budget_mb: float) -> float | None:
    """Peak memory beside the model: the input (float32 RGB), the 4x output (float32 RGB)
    and its quantized copy (up to 6 bytes a pixel) while writing, plus one tile's budget."""
    if item.in_size is None:
        return None
    pixels = item.in_size[0] * item.in_size[1]
    return (pixels * 12 + pixels * 16 * (12 + 6)) / 2**20 + budget_mb


@dataclass(frozen=True)
class BatchSummary:
    done: int
    failed: int
    skipped: int
    cancelled: int
    last_output: str  #: folder of the last output written ("" if none)


class QueueRunner(QObject):
    """``stateChanged()`` when running/pausing change; ``totalProgress(fraction, eta)``
    (fraction -1 when idle); ``batchFinished(BatchSummary)``."""

    stateChanged = Signal()
    totalProgress = Signal(float, object)
    batchFinished = Signal(object)

    def __init__(self, model: QueueModel, engine: Engine,
                 spec_for: Callable[[QueueItem], JobSpec], parent: QObject | None = None):
        super().__init__(parent)
        self.model, self.engine, self._spec_for = model, engine, spec_for
        self.running = False
        self.pausing = False
        self.current: str | None = None
        self._batch: list[str] = []
        engine.progress.connect(self._on_progress)
        engine.jobDone.connect(self._on_done)
        engine.loading.connect(self._on_loading)
        engine.modelReady.connect(lambda _info: self._set_stage(""))

    # -- commands ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or resume after a pause) with the queued items."""
        self.pausing = False
        if self.model.next_queued() is None and self.current is None:
            return
        if not self.running:
            self.running = True
            self._batch = []
        self.stateChanged.emit()
        self._next()

    def set_pause_after_current(self, on: bool) -> None:
        self.pausing = on
        if on and self.current is None and self.running:
            self._stop()
        self.stateChanged.emit()

    def cancel_current(self) -> None:
        if self.current is not None:
            self.engine.cancel_current()
            self.model.update_item(self.current, stage="Cancelling…")

    def cancel_all(self) -> None:
        self.model.set_statuses((Status.QUEUED,), Status.CANCELLED)
        self.cancel_current()

    # -- engine events -----------------------------------------------------------------------

    def _next(self) -> None:
        if not self.running or self.current is not None:
            return
        if self.pausing:
            self._stop()
            return
        for it in self.model.items():
            if it.status is Status.QUEUED and it.id not in self._batch:
                self._batch.append(it.id)
        item = self.model.next_queued()
        if item is None:
            self._finish_batch()
            return
        self.current = item.id
        self.model.update_item(item.id, status=Status.RUNNING, progress=0.0, eta=None,
                               error="", stage="Starting…")
        self.engine.submit(item.id, self._spec_for(item))
        self._emit_total()

    def _set_stage(self, stage: str) -> None:
        if self.current is not None:
            self.model.update_item(self.current, stage=stage)

    def _on_loading(self, _backend: str) -> None:
        self._set_stage("Loading model…")

    def _on_progress(self, item_id: str, fraction: float, _done: int, _total: int, eta) -> None:
        item = self.model.item_by_id(item_id)
        if item is None or item.status is not Status.RUNNING:
            return
        stage = item.stage if item.stage == "Cancelling…" else ""
        self.model.update_item(item_id, progress=fraction, eta=eta, stage=stage)
        self._emit_total()

    def _on_done(self, item_id: str, outcome: JobOutcome) -> None:
        item = self.model.item_by_id(item_id)
        if item is not None:
            self.model.update_item(
                item_id, status=outcome.status, output=outcome.output,
                out_size=outcome.out_size or item.out_size, error=outcome.error,
                seconds=outcome.seconds if outcome.status is Status.DONE else item.seconds,
                backend=outcome.backend, model=outcome.model, tiles=outcome.tiles,
                seam_period=outcome.seam_period, progress=1.0 if outcome.status is Status.DONE
                else 0.0, eta=None, stage="")
        if item_id == self.current:
            self.current = None
            self._emit_total()
            self._next()

    # -- bookkeeping -------------------------------------------------------------------------

    def _stop(self) -> None:
        self.running = False
        self.pausing = False
        self.stateChanged.emit()
        self.totalProgress.emit(-1.0, None)

    def _finish_batch(self) -> None:
        items = [it for it in (self.model.item_by_id(i) for i in self._batch) if it]
        outputs = [it.output for it in items if it.status is Status.DONE and it.output]
        summary = BatchSummary(
            done=sum(it.status is Status.DONE for it in items),
            failed=sum(it.status is Status.FAILED for it in items),
            skipped=sum(it.status is Status.SKIPPED for it in items),
            cancelled=sum(it.status is Status.CANCELLED for it in items),
            last_output=str(outputs[-1].parent) if outputs else "")
        self._batch = []
        self._stop()
        self.batchFinished.emit(summary)

    def _emit_total(self) -> None:
        items = [it for it in (self.model.item_by_id(i) for i in self._batch) if it]
        if not items:
            return
        weight = {it.id: (it.in_size[0] * it.in_size[1] if it.in_size else 1) for it in items}
        total = sum(weight.values())
        done = sum(weight[it.id] * (1.0 if it.status.finished else it.progress)
                   for it in items if it.status is not Status.QUEUED)
        eta: float | None = 0.0
        for it in items:
            if it.status is Status.RUNNING:
                part = it.eta
            elif it.status is Status.QUEUED:
                part = it.estimate
            else:
                continue
            eta = None if eta is None or part is None else eta + part
        self.totalProgress.emit(done / total, eta)
