"""The queue's table model: the Qt face of :class:`bimacosr_app.jobs.JobQueue`, whose items
(:class:`~bimacosr_app.jobs.QueueItem`) and rules it shows and announces to the view.

Columns: thumbnail, name, size (in -> out), status, and a progress/details column (progress
bar and ETA while running, the error on failure, time taken when done, the estimate while
queued). Rows are reordered by dragging (internal move) or :meth:`QueueModel.move_row`.
``saveNeeded`` fires on every change worth persisting (not on progress ticks).
"""

from __future__ import annotations

import enum

from PySide6.QtCore import QAbstractTableModel, QByteArray, QMimeData, QModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication, QStyle

from ..jobs import TRANSIENT_FIELDS, JobQueue, QueueItem, Status, format_duration

__all__ = ["STATUS_COLORS", "Column", "QueueModel"]

MIME_ROWS = "application/x-bimacosr-queue-ids"
THUMB_SIDE = 48
_ROOT = QModelIndex()


#: The colour of each status in the table.
STATUS_COLORS = {
    Status.QUEUED: QColor("#7a8290"),
    Status.RUNNING: QColor("#2f7de1"),
    Status.DONE: QColor("#2e9d57"),
    Status.FAILED: QColor("#d64541"),
    Status.SKIPPED: QColor("#c98a0b"),
    Status.CANCELLED: QColor("#9a6b3f"),
}


class Column(enum.IntEnum):
    THUMB = 0
    NAME = 1
    SIZE = 2
    STATUS = 3
    PROGRESS = 4


_HEADERS = {Column.THUMB: "", Column.NAME: "Name", Column.SIZE: "Size",
            Column.STATUS: "Status", Column.PROGRESS: "Progress"}


class QueueModel(QAbstractTableModel):
    """Rows of ``queue`` (a :class:`~bimacosr_app.jobs.JobQueue`); every change goes through
    this model so the view hears of it. Thumbnails (Qt images) are kept here by item id."""

    saveNeeded = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.queue = JobQueue()
        self._thumbnails: dict[str, QImage] = {}

    # -- access ------------------------------------------------------------------------------

    def items(self) -> list[QueueItem]:
        return self.queue.items()

    def item(self, row: int) -> QueueItem:
        return self.queue.item(row)

    def item_by_id(self, item_id: str) -> QueueItem | None:
        return self.queue.item_by_id(item_id)

    def row_of(self, item_id: str) -> int:
        return self.queue.row_of(item_id)

    def next_queued(self) -> QueueItem | None:
        return self.queue.next_queued()

    def count(self, *statuses: Status) -> int:
        return self.queue.count(*statuses)

    def thumbnail(self, item_id: str) -> QImage | None:
        return self._thumbnails.get(item_id)

    # -- changes -----------------------------------------------------------------------------

    def add_items(self, items: list[QueueItem]) -> list[QueueItem]:
        """Append ``items``, except inputs already queued or running."""
        new = self.queue.new_items(items)
        if new:
            first = len(self.queue)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self.queue.extend(new)
            self.endInsertRows()
            self.saveNeeded.emit()
        return new

    def update_item(self, item_id: str, **changes) -> None:
        """Set attributes of an item and repaint its row."""
        row = self.queue.update(item_id, **changes)
        if row < 0:
            return
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(Column) - 1))
        if changes.keys() - TRANSIENT_FIELDS:
            self.saveNeeded.emit()

    def set_thumbnail(self, item_id: str, image: QImage) -> None:
        self._thumbnails[item_id] = image
        row = self.queue.row_of(item_id)
        if row >= 0:
            self.dataChanged.emit(self.index(row, Column.THUMB), self.index(row, Column.THUMB))

    def remove_rows(self, rows: list[int]) -> None:
        for row in sorted(set(rows), reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            self._thumbnails.pop(self.queue.item(row).id, None)
            self.queue.remove(row)
            self.endRemoveRows()
        if rows:
            self.saveNeeded.emit()

    def move_row(self, row: int, to: int) -> bool:
        """Move the item at ``row`` so that it ends up at index ``to``."""
        to = self.queue.move_target(row, to)
        if to is None:
            return False
        dest = to + 1 if to > row else to
        self.beginMoveRows(QModelIndex(), row, row, QModelIndex(), dest)
        self.queue.move(row, to)
        self.endMoveRows()
        self.saveNeeded.emit()
        return True

    def set_statuses(self, old: tuple[Status, ...], new: Status) -> int:
        """Every item in one of the ``old`` statuses gets ``new`` (errors cleared on retry)."""
        changed = self.queue.set_statuses(old, new)
        if changed:
            self.dataChanged.emit(self.index(0, 0),
                                  self.index(len(self.queue) - 1, len(Column) - 1))
            self.saveNeeded.emit()
        return changed

    def reset_items(self, items: list[QueueItem]) -> None:
        self.beginResetModel()
        self.queue.reset(items)
        self._thumbnails.clear()
        self.endResetModel()
        self.saveNeeded.emit()

    # -- Qt model ----------------------------------------------------------------------------

    def rowCount(self, parent=_ROOT) -> int:
        return 0 if parent.isValid() else len(self.queue)

    def columnCount(self, parent=_ROOT) -> int:
        return 0 if parent.isValid() else len(Column)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _HEADERS[Column(section)]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item, col = self.queue.item(index.row()), Column(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(item, col)
        if role == Qt.ItemDataRole.DecorationRole and col is Column.THUMB:
            thumbnail = self._thumbnails.get(item.id)
            if thumbnail is None and item.status is Status.FAILED:
                return QApplication.style().standardIcon(
                    QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(24, 24)
            return thumbnail
        if role == Qt.ItemDataRole.ForegroundRole and col is Column.STATUS:
            return STATUS_COLORS[item.status]
        if role == Qt.ItemDataRole.ForegroundRole and col is Column.PROGRESS and item.error:
            return STATUS_COLORS[Status.FAILED]
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = str(item.input)
            if item.output is not None:
                tip += f"\n→ {item.output}"
            tip += f"\n\n{item.error}" if item.error else ""
            return tip + "".join(f"\n⚠ {w}" for w in item.warnings)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{item.input.name}, {item.status.label}" + (
                f", {item.error}" if item.error else "") + "".join(
                f", warning: {w}" for w in item.warnings)
        if role == Qt.ItemDataRole.UserRole:
            return item
        return None

    def _display(self, item: QueueItem, col: Column) -> str | None:
        if col is Column.NAME:
            return item.input.name
        if col is Column.SIZE:
            if item.in_size is None:
                return "?" if item.status is Status.FAILED else "…"
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
                warned = f" · ⚠ {len(item.warnings)} warning{'s' * (len(item.warnings) > 1)}" \
                    if item.warnings else ""
                return f"{format_duration(item.seconds)} · {name}{warned}"
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
        mime.setData(MIME_ROWS, QByteArray(",".join(self.queue.item(r).id for r in rows).encode()))
        return mime

    def dropMimeData(self, data, action, row, column, parent) -> bool:
        if action != Qt.DropAction.MoveAction or not data.hasFormat(MIME_ROWS):
            return False
        ids = bytes(data.data(MIME_ROWS).data()).decode().split(",")
        target = row if row >= 0 else (parent.row() if parent.isValid() else len(self.queue))
        moving = [self.queue.item(r) for r in (self.row_of(i) for i in ids) if r >= 0]
        for item in moving:
            src = self.row_of(item.id)
            dest = target - 1 if src < target else target
            self.move_row(src, dest)
            target = self.row_of(item.id) + 1
        return False  # rows were moved here: the view must not remove the sources
