"""The queue: :class:`QueueItem` records and the table model the queue view shows.

Columns: thumbnail, name, size (in -> out), status, and a progress/details column (progress
bar and ETA while running, the error on failure, time taken when done, the estimate while
queued). Rows are reordered by dragging (internal move) or :meth:`QueueModel.move_row`.
``saveNeeded`` fires on every change worth persisting (not on progress ticks).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QByteArray, QMimeData, QModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication, QStyle

__all__ = ["Column", "QueueItem", "QueueModel", "Status", "format_duration"]

MIME_ROWS = "application/x-bimacosr-queue-ids"
THUMB_SIDE = 48
_ROOT = QModelIndex()


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
    def color(self) -> QColor:
        return QColor(_STATUS_COLORS[self])

    @property
    def finished(self) -> bool:
        return self not in (Status.QUEUED, Status.RUNNING)


_STATUS_COLORS = {
    Status.QUEUED: "#7a8290",
    Status.RUNNING: "#2f7de1",
    Status.DONE: "#2e9d57",
    Status.FAILED: "#d64541",
    Status.SKIPPED: "#c98a0b",
    Status.CANCELLED: "#9a6b3f",
}


class Column(enum.IntEnum):
    THUMB = 0
    NAME = 1
    SIZE = 2
    STATUS = 3
    PROGRESS = 4


_HEADERS = {Column.THUMB: "", Column.NAME: "Name", Column.SIZE: "Size",
            Column.STATUS: "Status", Column.PROGRESS: "Progress"}


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
    unreadable: str = ""  #: why the header could not be read (the job will say it too)
    estimate: float | None = None  #: seconds, before it runs
    thumbnail: QImage | None = None

    def expected_out_size(self) -> tuple[int, int] | None:
        if self.out_size is not None:
            return self.out_size
        if self.in_size is None:
            return None
        return self.in_size[0] * self.scale, self.in_size[1] * self.scale


class QueueModel(QAbstractTableModel):
    saveNeeded = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._items: list[QueueItem] = []

    # -- access ------------------------------------------------------------------------------

    def items(self) -> list[QueueItem]:
        return list(self._items)

    def item(self, row: int) -> QueueItem:
        return self._items[row]

    def item_by_id(self, item_id: str) -> QueueItem | None:
        return next((it for it in self._items if it.id == item_id), None)

    def row_of(self, item_id: str) -> int:
        return next((r for r, it in enumerate(self._items) if it.id == item_id), -1)

    def next_queued(self) -> QueueItem | None:
        return next((it for it in self._items if it.status is Status.QUEUED), None)

    def count(self, *statuses: Status) -> int:
        return sum(it.status in statuses for it in self._items)

    # -- changes -----------------------------------------------------------------------------

    def add_items(self, items: list[QueueItem]) -> list[QueueItem]:
        """Append ``items``, except inputs already queued or running."""
        pending = {it.input for it in self._items
                   if it.status in (Status.QUEUED, Status.RUNNING)}
        new = []
        for it in items:
            if it.input not in pending:
                pending.add(it.input)
                new.append(it)
        if new:
            first = len(self._items)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._items.extend(new)
            self.endInsertRows()
            self.saveNeeded.emit()
        return new

    def update_item(self, item_id: str, **changes) -> None:
        """Set attributes of an item and repaint its row."""
        row = self.row_of(item_id)
        if row < 0:
            return
        item = self._items[row]
        for key, value in changes.items():
            setattr(item, key, value)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(Column) - 1))
        if changes.keys() - {"progress", "eta", "stage", "thumbnail", "estimate", "unreadable"}:
            self.saveNeeded.emit()

    def remove_rows(self, rows: list[int]) -> None:
        for row in sorted(set(rows), reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._items[row]
            self.endRemoveRows()
        if rows:
            self.saveNeeded.emit()

    def move_row(self, row: int, to: int) -> bool:
        """Move the item at ``row`` so that it ends up at index ``to``."""
        to = max(0, min(len(self._items) - 1, to))
        if row == to or not 0 <= row < len(self._items):
            return False
        dest = to + 1 if to > row else to
        self.beginMoveRows(QModelIndex(), row, row, QModelIndex(), dest)
        self._items.insert(to, self._items.pop(row))
        self.endMoveRows()
        self.saveNeeded.emit()
        return True

    def set_statuses(self, old: tuple[Status, ...], new: Status) -> int:
        """Every item in one of the ``old`` statuses gets ``new`` (errors cleared on retry)."""
        changed = 0
        for it in self._items:
            if it.status in old:
                it.status, it.progress, it.eta = new, 0.0, None
                if new is Status.QUEUED:
                    it.error, it.stage = "", ""
                changed += 1
        if changed:
            self.dataChanged.emit(self.index(0, 0),
                                  self.index(len(self._items) - 1, len(Column) - 1))
            self.saveNeeded.emit()
        return changed

    def reset_items(self, items: list[QueueItem]) -> None:
        self.beginResetModel()
        self._items = list(items)
        self.endResetModel()
        self.saveNeeded.emit()

    # -- Qt model ----------------------------------------------------------------------------

    def rowCount(self, parent=_ROOT) -> int:
        return 0 if parent.isValid() else len(self._items)

    def columnCount(self, parent=_ROOT) -> int:
        return 0 if parent.isValid() else len(Column)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _HEADERS[Column(section)]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item, col = self._items[index.row()], Column(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(item, col)
        if role == Qt.ItemDataRole.DecorationRole and col is Column.THUMB:
            if item.thumbnail is None and item.unreadable:
                return QApplication.style().standardIcon(
                    QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(24, 24)
            return item.thumbnail
        if role == Qt.ItemDataRole.ForegroundRole and col is Column.STATUS:
            return item.status.color
        if role == Qt.ItemDataRole.ForegroundRole and col is Column.PROGRESS and item.error:
            return Status.FAILED.color
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = str(item.input)
            if item.output is not None:
                tip += f"\n→ {item.output}"
            problem = item.error or item.unreadable
            return tip + (f"\n\n{problem}" if problem else "")
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{item.input.name}, {item.status.label}" + (
                f", {item.error}" if item.error else "")
        if role == Qt.ItemDataRole.UserRole:
            return item
        return None

    def _display(self, item: QueueItem, col: Column) -> str | None:
        if col is Column.NAME:
            return item.input.name
        if col is Column.SIZE:
            if item.in_size is None:
                return "?" if item.unreadable else "…"
            out = item.expected_out_size()
            return f"{item.in_size[0]}×{item.in_size[1]}\n→ {out[0]}×{out[1]}"
        if col is Column.STATUS:
            return item.status.label
        if col is Column.PROGRESS:
            if item.status is Status.RUNNING:
                eta = f" · {format_duration(item.eta)} left" if item.eta is not None else ""
                return item.stage or f"{item.progress:.0%}{eta}"
            if item.error:
                return item.error
            if item.status is Status.DONE and item.seconds is not None:
                name = item.output.name if item.output else ""
                return f"{format_duration(item.seconds)} · {name}"
            if item.status is Status.QUEUED and item.estimate is not None:
                return f"≈ {format_duration(item.estimate)}"
            return ""
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        if index.isValid():
            return base | Qt.ItemFlag.ItemIsDragEnabled
        return base | Qt.ItemFlag.ItemIsDropEnabled

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [MIME_ROWS]

    def mimeData(self, indexes) -> QMimeData:
        rows = sorted({i.row() for i in indexes})
        mime = QMimeData()
        mime.setData(MIME_ROWS, QByteArray(",".join(self._items[r].id for r in rows).encode()))
        return mime

    def dropMimeData(self, data, action, row, column, parent) -> bool:
        if action != Qt.DropAction.MoveAction or not data.hasFormat(MIME_ROWS):
            return False
        ids = bytes(data.data(MIME_ROWS).data()).decode().split(",")
        target = row if row >= 0 else (parent.row() if parent.isValid() else len(self._items))
        moving = [self._items[r] for r in (self.row_of(i) for i in ids) if r >= 0]
        for item in moving:
            src = self.row_of(item.id)
            dest = target - 1 if src < target else target
            self.move_row(src, dest)
            target = self.row_of(item.id) + 1
        return False  # rows were moved here: the view must not remove the sources
