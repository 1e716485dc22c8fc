"""The queue of a session of work, without Qt: items and their statuses, the order they run
in, the runner's states, progress and estimates, and the saved queue that resumes after a
quit or crash. The window adapts it to Qt (``gui.queue_model``, ``gui.runner``); nothing here
imports Qt.

* :class:`QueueItem`: one input and what became of it; :class:`Status` its state.
* :class:`JobQueue`: the ordered items and the rules that change them (no duplicate of a
  queued or running input, retry clears errors, moves clamp to the ends).
* :class:`QueueRunner`: runs the queued items one at a time, in order, through an
  :class:`Executor` (start, pause after current, cancel current, cancel all), and reports its
  state, the batch's total progress and ETA, and a summary when the batch ends.
* :class:`SpeedTable`: this computer's speed per backend and tile size, refined by every
  finished job (:class:`SpeedSample`), from which queued items are estimated.
* :class:`QueueStore`: ``queue.json`` in the user data folder, written atomically after
  every change worth keeping; items that were running come back queued.
* :func:`scan_inputs`: the images among dropped, opened or pasted paths, scanned exactly as
  the command line scans its inputs (:func:`~.batch.plan_batch`), and the folders whose
  subfolders hold photos that were left out.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from platformdirs import user_data_dir

from .. import APP_NAME
from ..atomic import atomic_write_bytes

if TYPE_CHECKING:
    from .request import UpscaleResult

__all__ = [
    "TRANSIENT_FIELDS",
    "BatchSummary",
    "Executor",
    "Found",
    "JobOutcome",
    "JobQueue",
    "QueueItem",
    "QueueRunner",
    "QueueStore",
    "ScanResult",
    "SpeedSample",
    "SpeedTable",
    "Status",
    "default_queue_dir",
    "estimate_memory_mb",
    "estimate_seconds",
    "format_duration",
    "scan_inputs",
]


class Status(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return self.value.capitalize()

    @property
    def finished(self) -> bool:
        return self not in (Status.QUEUED, Status.RUNNING)


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass
class QueueItem:
    """One input file in the queue and what became of it."""

    input: Path
    scale: int = 4
    subfolder: str = ""  #: below the output folder, mirroring the scanned folder tree
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: Status = Status.QUEUED
    in_size: tuple[int, int] | None = None  #: (width, height) from the header
    out_size: tuple[int, int] | None = None  #: of the written output
    output: Path | None = None
    error: str = ""
    #: what the job said about its result (a file kept and a number added, a JPEG without
    #: its end marker, a tile split after memory ran out, ...)
    warnings: list[str] = field(default_factory=list)
    seconds: float | None = None  #: time the job took
    backend: str = ""
    model: str = ""  #: content hash of the model
    tiles: str = ""  #: tile settings, in words
    #: output pixels between tile cuts (rows, columns), 0: none (for the quality check)
    seam_period: tuple[int, int] = (0, 0)
    # Transient, not persisted:
    progress: float = 0.0
    eta: float | None = None
    stage: str = ""  #: e.g. "Loading model…" while running
    estimate: float | None = None  #: seconds, before it runs

    @property
    def weight(self) -> int:
        """The item's share of a batch's progress: its input pixels (1 while unknown)."""
        return self.in_size[0] * self.in_size[1] if self.in_size else 1

    def expected_out_size(self) -> tuple[int, int] | None:
        if self.out_size is not None:
            return self.out_size
        if self.in_size is None:
            return None
        return self.in_size[0] * self.scale, self.in_size[1] * self.scale


#: QueueItem fields that change while an item runs or is looked at, not worth saving.
TRANSIENT_FIELDS = frozenset({"progress", "eta", "stage", "estimate"})


@dataclass(frozen=True)
class JobOutcome:
    """What one job gave (the executor's report to the runner)."""

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
    speed: SpeedSample | None = None  #: how fast it ran (a job done by a model only)
    warnings: tuple[str, ...] = ()  #: the result's warnings, for the user

    @classmethod
    def from_result(cls, result: UpscaleResult, **details) -> JobOutcome:
        """The outcome of a request's result, its warnings too; ``details``: the other fields
        (backend, …)."""
        return cls(status=Status(result.status), output=result.output,
                   out_size=result.output_size, seconds=result.seconds,
                   error=result.error or "", warnings=tuple(result.warnings), **details)


@dataclass
class QueuedTotals:
    """Running totals over a queue's queued items."""

    count: int = 0
    weight: int = 0  #: the sum of their :attr:`QueueItem.weight`
    seconds: float = 0.0  #: the sum of their estimates
    estimated: int = 0  #: how many have an estimate
    unestimated_pixels: int = 0  #: input pixels of those with a size and no estimate


class JobQueue:
    """The ordered items. Reading is free; each change returns what it changed, so that a
    view (the window's table model) can announce it around the change.

    Every change goes through these methods, which keep what the runner reads per event in
    constant time: items by id, rows (rebuilt once after a removal, move or reset), where the
    first queued item can be (no item before :attr:`_first_queued` is queued), and running
    totals over the queued items (:meth:`queued_totals`). So a batch of N items costs the
    runner O(N) in all, not O(N) per progress event (docs/BENCHMARKS.md, "Queue runner").
    """

    def __init__(self) -> None:
        self._items: list[QueueItem] = []
        self._by_id: dict[str, QueueItem] = {}
        self._rows: dict[str, int] | None = {}  # None: rebuilt on next use
        self._first_queued = 0  # no queued item before this row
        self._queued = QueuedTotals()

    # -- the running totals ------------------------------------------------------------------

    def _count(self, item: QueueItem, sign: int) -> None:
        """Add (sign 1) or take away (-1) an item's share of the queued totals."""
        if item.status is not Status.QUEUED:
            return
        totals = self._queued
        totals.count += sign
        totals.weight += sign * item.weight
        if item.estimate is not None:
            totals.seconds += sign * item.estimate
            totals.estimated += sign
        elif item.in_size is not None:
            totals.unestimated_pixels += sign * item.in_size[0] * item.in_size[1]

    def _recount(self) -> None:
        self._queued = QueuedTotals()
        for it in self._items:
            self._count(it, 1)

    def queued_totals(self) -> QueuedTotals:
        """Running totals over the queued items (a copy)."""
        totals = dataclasses.replace(self._queued)
        if not totals.estimated:
            totals.seconds = 0.0  # no float residue of estimates added and taken away
        return totals

    # -- reading -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[QueueItem]:
        return list(self._items)

    def item(self, row: int) -> QueueItem:
        return self._items[row]

    def item_by_id(self, item_id: str) -> QueueItem | None:
        return self._by_id.get(item_id)

    def row_of(self, item_id: str) -> int:
        if self._rows is None:
            self._rows = {it.id: row for row, it in enumerate(self._items)}
        return self._rows.get(item_id, -1)

    def next_queued(self) -> QueueItem | None:
        for row in range(self._first_queued, len(self._items)):
            if self._items[row].status is Status.QUEUED:
                self._first_queued = row
                return self._items[row]
        self._first_queued = len(self._items)
        return None

    def count(self, *statuses: Status) -> int:
        return sum(it.status in statuses for it in self._items)

    def new_items(self, items: Iterable[QueueItem]) -> list[QueueItem]:
        """Those of ``items`` that may be added: not an input already queued or running,
        nor twice among them."""
        pending = {it.input for it in self._items
                   if it.status in (Status.QUEUED, Status.RUNNING)}
        new = []
        for it in items:
            if it.input not in pending:
                pending.add(it.input)
                new.append(it)
        return new

    # -- changes -----------------------------------------------------------------------------

    def extend(self, items: list[QueueItem]) -> None:
        for it in items:
            if self._rows is not None:
                self._rows[it.id] = len(self._items)
            self._items.append(it)
            self._by_id[it.id] = it
            self._count(it, 1)

    def update(self, item_id: str, **changes) -> int:
        """Set attributes of an item; its row, or -1 when it is not in the queue."""
        item = self._by_id.get(item_id)
        if item is None:
            return -1
        self._count(item, -1)
        for key, value in changes.items():
            setattr(item, key, value)
        self._count(item, 1)
        row = self.row_of(item_id)
        if item.status is Status.QUEUED:
            self._first_queued = min(self._first_queued, row)
        return row

    def _structure_changed(self) -> None:
        self._rows = None
        self._first_queued = 0

    def remove(self, row: int) -> None:
        item = self._items.pop(row)
        del self._by_id[item.id]
        self._count(item, -1)
        self._structure_changed()

    def move_target(self, row: int, to: int) -> int | None:
        """Where a move of ``row`` to index ``to`` ends (clamped), or None for no move."""
        to = max(0, min(len(self._items) - 1, to))
        if row == to or not 0 <= row < len(self._items):
            return None
        return to

    def move(self, row: int, to: int) -> None:
        self._items.insert(to, self._items.pop(row))
        self._structure_changed()

    def set_statuses(self, old: tuple[Status, ...], new: Status) -> int:
        """Every item in one of the ``old`` statuses gets ``new`` (errors cleared on retry);
        returns how many."""
        changed = 0
        for it in self._items:
            if it.status in old:
                it.status, it.progress, it.eta = new, 0.0, None
                if new is Status.QUEUED:
                    it.error, it.stage = "", ""
                changed += 1
        if changed:
            self._recount()
            self._first_queued = 0
        return changed

    def reset(self, items: list[QueueItem]) -> None:
        self._items = list(items)
        self._by_id = {it.id: it for it in self._items}
        self._recount()
        self._structure_changed()


# -- estimates ---------------------------------------------------------------------------------

_MODEL_SCALE = 4  #: the model always works at 4x (2x/3x downscale afterwards)


def estimate_seconds(item: QueueItem, seconds_per_mp: float | None) -> float | None:
    """Time to upscale ``item`` at ``seconds_per_mp`` per model output megapixel."""
    if seconds_per_mp is None or item.in_size is None:
        return None
    return seconds_per_mp * item.in_size[0] * item.in_size[1] * _MODEL_SCALE**2 / 1e6


@dataclass(frozen=True)
class SpeedSample:
    """How fast one finished job ran: on which backend, with which tile budget (MB, None:
    automatic) and the tile side (LR pixels) it gave, in how many seconds for how many model
    output pixels."""

    backend: str
    budget_mb: float | None
    tile: int
    seconds: float
    model_pixels: int


class SpeedTable:
    """Seconds per model output megapixel per (backend, tile side), refined by every finished
    job: a job's seconds and megapixels are added to its key's totals after those are
    multiplied by :attr:`KEEP`, so the rate follows the recent jobs, each weighed by its size.
    The tile side a tile budget gave on a backend is remembered too, so a queued photo is
    estimated at the tile size its job will use. Text form: :meth:`to_json`."""

    KEEP = 0.5  #: weight of the earlier jobs' totals when a job is added

    def __init__(self) -> None:
        self._totals: dict[str, list[float]] = {}  # "backend/tile" -> [seconds, megapixels]
        self._tiles: dict[str, int] = {}  # "backend/budget" -> tile side

    @staticmethod
    def _budget_key(backend: str, budget_mb: float | None) -> str:
        return f"{backend}/{'auto' if budget_mb is None else f'{budget_mb:g}'}"

    def add(self, sample: SpeedSample) -> None:
        if sample.model_pixels <= 0 or sample.tile <= 0 or sample.seconds <= 0:
            return
        key = f"{sample.backend}/{sample.tile}"
        seconds, megapixels = self._totals.get(key, (0.0, 0.0))
        self._totals[key] = [seconds * self.KEEP + sample.seconds,
                             megapixels * self.KEEP + sample.model_pixels / 1e6]
        self._tiles[self._budget_key(sample.backend, sample.budget_mb)] = sample.tile

    def rate(self, backend: str, budget_mb: float | None) -> float | None:
        """Seconds per model output megapixel on ``backend`` with ``budget_mb``, or None while
        no job has run there with the tile size that budget gives."""
        tile = self._tiles.get(self._budget_key(backend, budget_mb))
        totals = self._totals.get(f"{backend}/{tile}")
        return None if totals is None else totals[0] / totals[1]

    def to_json(self) -> str:
        return json.dumps({"rates": self._totals, "tiles": self._tiles}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SpeedTable:
        """The table :meth:`to_json` wrote; an empty one for text it did not write."""
        table = cls()
        try:
            data = json.loads(text)
            totals = {str(k): [float(v[0]), float(v[1])] for k, v in data["rates"].items()}
            tiles = {str(k): int(v) for k, v in data["tiles"].items()}
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return table
        table._totals = {k: v for k, v in totals.items() if v[0] > 0 and v[1] > 0}
        table._tiles = tiles
        return table


def estimate_memory_mb(item: QueueItem, budget_mb: float) -> float | None:
    """Peak memory beside the model: the input (float32 RGB), the 4x output (float32 RGB)
    and its quantized copy (up to 6 bytes a pixel) while writing, plus one tile's budget."""
    if item.in_size is None:
        return None
    pixels = item.in_size[0] * item.in_size[1]
    return (pixels * 12 + pixels * 16 * (12 + 6)) / 2**20 + budget_mb


# -- the runner --------------------------------------------------------------------------------

class Executor(Protocol):
    """Runs one job at a time and reports to the runner (``on_stage``, ``on_progress``,
    ``on_done``), possibly later and from the caller's event loop."""

    def submit(self, item: QueueItem) -> None: ...

    def cancel_current(self) -> None: ...


@dataclass(frozen=True)
class BatchSummary:
    done: int
    failed: int
    skipped: int
    cancelled: int
    last_output: str  #: folder of the last output written ("" if none)
    warned: int = 0  #: items whose result came with warnings


class QueueRunner:
    """Runs the queue through an executor, one item at a time, in queue order.

    States: idle -> running (a batch) -> idle again when nothing is queued; "pause after
    current" lets the running item finish and then stops (start resumes). Cancel current
    stops the running item between two tiles; cancel all also marks every queued item
    cancelled. Total progress weighs every item of the batch (those it finished, the running
    one and the queued ones) by its input pixels; the ETA is the running item's ETA (its
    estimate until a tile has timed it) plus the estimates of the queued ones, given while any
    of them has an estimate (items without one add nothing). ``rate()``, when given, estimates
    the items that have none: seconds per model output megapixel (``SpeedTable.rate``), or
    ``None`` while unknown.

    Each event (a progress report, a finished job, the next start) costs constant time: the
    batch is a dict, its finished part a running total, the queued part the queue's running
    totals (:meth:`JobQueue.queued_totals`).

    ``changed(item_id, fields)`` is called after every change the runner makes to an item
    (through :meth:`update`), ``state_changed()`` when running/pausing change,
    ``total_progress(fraction, eta)`` (fraction -1 when idle) and
    ``batch_finished(BatchSummary)``.
    """

    def __init__(self, queue: JobQueue, executor: Executor,
                 update: Callable[..., None] | None = None,
                 state_changed: Callable[[], None] = lambda: None,
                 total_progress: Callable[[float, float | None], None] = lambda f, e: None,
                 batch_finished: Callable[[BatchSummary], None] = lambda s: None,
                 rate: Callable[[], float | None] | None = None) -> None:
        self.queue, self.executor = queue, executor
        self._update = update or (lambda item_id, **changes: queue.update(item_id, **changes))
        self._state_changed, self._total = state_changed, total_progress
        self._finished = batch_finished
        self._rate = rate
        self.running = False
        self.pausing = False
        self.current: str | None = None
        #: the items this batch finished (ran, or cancelled while queued), in order, with
        #: their weights; and the sum of those weights
        self._batch: dict[str, int] = {}
        self._done_weight = 0

    # -- commands ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or resume after a pause) with the queued items."""
        self.pausing = False
        if self.queue.next_queued() is None and self.current is None:
            return
        if not self.running:
            self.running = True
            self._batch, self._done_weight = {}, 0
        self._state_changed()
        self._next()

    def set_pause_after_current(self, on: bool) -> None:
        self.pausing = on
        if on and self.current is None and self.running:
            self._stop()
        self._state_changed()

    def cancel_current(self) -> None:
        if self.current is not None:
            self.executor.cancel_current()
            self._update(self.current, stage="Cancelling…")

    def cancel_all(self) -> None:
        for item in self.queue.items():
            if item.status is Status.QUEUED:
                self._update(item.id, status=Status.CANCELLED, progress=0.0, eta=None)
                self._finish(item)
        self.cancel_current()

    # -- executor events ---------------------------------------------------------------------

    def on_stage(self, stage: str) -> None:
        """The running job's stage in words ("Loading model…"; "" when it computes)."""
        if self.current is not None:
            self._update(self.current, stage=stage)

    def on_progress(self, item_id: str, fraction: float, eta: float | None) -> None:
        item = self.queue.item_by_id(item_id)
        if item is None or item.status is not Status.RUNNING:
            return
        stage = item.stage if item.stage == "Cancelling…" else ""
        self._update(item_id, progress=fraction, eta=eta, stage=stage)
        self._emit_total()

    def on_done(self, item_id: str, outcome: JobOutcome) -> None:
        item = self.queue.item_by_id(item_id)
        if item is not None:
            done = outcome.status is Status.DONE
            self._update(
                item_id, status=outcome.status, output=outcome.output,
                out_size=outcome.out_size or item.out_size, error=outcome.error,
                seconds=outcome.seconds if done else item.seconds, backend=outcome.backend,
                model=outcome.model, tiles=outcome.tiles, seam_period=outcome.seam_period,
                warnings=list(outcome.warnings), progress=1.0 if done else 0.0, eta=None,
                stage="")
        if item_id == self.current:
            if item is not None:
                self._finish(item)
            self.current = None
            self._emit_total()
            self._next()

    # -- bookkeeping -------------------------------------------------------------------------

    def _finish(self, item: QueueItem) -> None:
        """Count a finished item into the batch (once: a retried one replaces its share)."""
        self._done_weight += item.weight - self._batch.pop(item.id, 0)
        self._batch[item.id] = item.weight

    def _next(self) -> None:
        if not self.running or self.current is not None:
            return
        if self.pausing:
            self._stop()
            return
        item = self.queue.next_queued()
        if item is None:
            self._finish_batch()
            return
        if item.id in self._batch:  # finished earlier in this batch, queued again since
            self._done_weight -= self._batch.pop(item.id)
        self.current = item.id
        self._update(item.id, status=Status.RUNNING, progress=0.0, eta=None, error="",
                     warnings=[], stage="Starting…")
        self.executor.submit(item)
        self._emit_total()

    def _stop(self) -> None:
        self.running = False
        self.pausing = False
        self._state_changed()
        self._total(-1.0, None)

    def _finish_batch(self) -> None:
        items = [it for it in map(self.queue.item_by_id, self._batch) if it is not None]
        outputs = [it.output for it in items if it.status is Status.DONE and it.output]
        summary = BatchSummary(
            done=sum(it.status is Status.DONE for it in items),
            failed=sum(it.status is Status.FAILED for it in items),
            skipped=sum(it.status is Status.SKIPPED for it in items),
            cancelled=sum(it.status is Status.CANCELLED for it in items),
            last_output=str(outputs[-1].parent) if outputs else "",
            warned=sum(bool(it.warnings) for it in items))
        self._batch, self._done_weight = {}, 0
        self._stop()
        self._finished(summary)

    def _emit_total(self) -> None:
        queued = self.queue.queued_totals()
        running = None if self.current is None else self.queue.item_by_id(self.current)
        total = self._done_weight + queued.weight + (running.weight if running else 0)
        if not total:
            return
        done = self._done_weight + (running.weight * running.progress if running else 0.0)
        rate = self._rate() if self._rate is not None else None
        by_rate = (rate * queued.unestimated_pixels * _MODEL_SCALE**2 / 1e6
                   if rate is not None and queued.unestimated_pixels else None)
        running_estimate = None if running is None else self._estimate(running, rate)
        eta = None
        if queued.estimated or by_rate is not None or running_estimate is not None:
            eta = queued.seconds + (by_rate or 0.0)
            if running is not None:
                eta += self._time_left(running, running_estimate)
        self._total(done / total, eta)

    @staticmethod
    def _estimate(item: QueueItem, rate: float | None) -> float | None:
        return item.estimate if item.estimate is not None else estimate_seconds(item, rate)

    @staticmethod
    def _time_left(item: QueueItem, estimate: float | None) -> float:
        """The running item's seconds to go: its own ETA once a tile has timed it, else what
        is left of its estimate (0 without one)."""
        if item.eta is not None:
            return item.eta
        if estimate is None:
            return 0.0
        return estimate * (1.0 - item.progress)


# -- the saved queue ---------------------------------------------------------------------------

QUEUE_FORMAT_VERSION = 1
_SAVED_FIELDS = ("id", "scale", "subfolder", "error", "seconds", "backend", "model", "tiles")


def default_queue_dir() -> Path:
    """``<platformdirs user_data_dir>`` (``$BIMACOSR_DATA_DIR`` when set)."""
    override = os.environ.get("BIMACOSR_DATA_DIR")
    return Path(override) if override else Path(user_data_dir(APP_NAME, appauthor=False))


def _item_to_json(item: QueueItem) -> dict:
    record = {name: getattr(item, name) for name in _SAVED_FIELDS}
    record.update(
        seam_period=list(item.seam_period),
        warnings=list(item.warnings),
        input=str(item.input),
        status=item.status.value,
        output=str(item.output) if item.output is not None else None,
        in_size=list(item.in_size) if item.in_size else None,
        out_size=list(item.out_size) if item.out_size else None,
    )
    return record


def _item_from_json(record: dict) -> QueueItem:
    status = Status(record["status"])
    if status is Status.RUNNING:  # interrupted: run it again
        status = Status.QUEUED
    item = QueueItem(input=Path(record["input"]), status=status)
    for name in _SAVED_FIELDS:
        if record.get(name) is not None:
            setattr(item, name, record[name])
    item.seam_period = tuple(record.get("seam_period") or (0, 0))
    warnings = record.get("warnings")
    item.warnings = [str(w) for w in warnings] if isinstance(warnings, list) else []
    item.output = Path(record["output"]) if record.get("output") else None
    item.in_size = tuple(record["in_size"]) if record.get("in_size") else None
    item.out_size = tuple(record["out_size"]) if record.get("out_size") else None
    return item


class QueueStore:
    """The saved queue: ``queue.json`` in ``folder`` (default: :func:`default_queue_dir`),
    written atomically, so a crash leaves the previous or the new version."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_queue_dir()
        self.path = self.folder / "queue.json"

    def save(self, items: list[QueueItem]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {"version": QUEUE_FORMAT_VERSION,
                   "items": [_item_to_json(it) for it in items]}
        atomic_write_bytes(self.path, json.dumps(payload, indent=1).encode("utf-8"))

    def load(self) -> list[QueueItem]:
        """The saved items; an empty list when there is no file or it cannot be parsed."""
        try:
            payload = json.loads(self.path.read_text(encoding="utf-8"))
            if payload.get("version") != QUEUE_FORMAT_VERSION:
                return []
            return [_item_from_json(r) for r in payload["items"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return []

    def unfinished(self) -> list[QueueItem]:
        """The saved queue if it still has work to do (queued or interrupted items), else []."""
        items = self.load()
        return items if any(it.status is Status.QUEUED for it in items) else []


# -- scanning ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Found:
    file: Path
    subfolder: str  #: folder of ``file`` below the scanned folder ("" at its top)


@dataclass(frozen=True)
class ScanResult:
    found: list[Found]
    problems: list[str]  #: one line per path that gave nothing
    #: folders scanned without their subfolders whose subfolders hold photos
    subfolders_left_out: list[Path] = field(default_factory=list)


def scan_inputs(paths: Iterable[str | os.PathLike[str]], recursive: bool) -> ScanResult:
    """Images among ``paths`` (folders scanned, recursively when ``recursive``), in order,
    without duplicates, exactly as the command line scans them (:func:`~.batch.plan_batch`):
    image files by suffix, hidden ones skipped, and so are this app's own earlier outputs,
    recognised by content, whatever their names (its provenance record, or a journal in the
    scanned folders listing the file as an output: ``jobs.batch``'s "Scanning"). Files given
    one by one are taken as they are. Without ``recursive``, the folders with photos in a
    visible subfolder are listed too."""
    from .batch import InputError, plan_batch

    found: dict[Path, Found] = {}
    problems = []
    left_out = []
    for raw in paths:
        path = Path(raw)
        if not recursive and path.is_dir() and _photos_in_subfolders(path):
            left_out.append(path)
        try:
            batch = plan_batch([path], recursive=recursive)
        except InputError:
            problems.append(f"'{path}' does not exist" if not path.exists() else
                            f"no photos in '{path}'" + ("" if recursive else
                                                        " (subfolders not included)"))
            continue
        for request in batch.requests:
            sub = request.input.parent.relative_to(path) if path.is_dir() else Path()
            file = Path(os.path.abspath(request.input))
            found.setdefault(file.resolve(), Found(file, "" if sub == Path() else sub.as_posix()))
    return ScanResult(list(found.values()), problems, left_out)


def _photos_in_subfolders(folder: Path) -> bool:
    """Whether a visible subfolder of ``folder``, at any depth, holds an image (the walk stops
    at the first)."""
    from ..image_io import is_image_path

    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if Path(root) != folder and any(is_image_path(n) for n in names):
            return True
    return False
