"""The queue table: thumbnails, coloured status, progress bars, drag to reorder.

File and folder drops are not handled here: the model only accepts its own rows, so drags
from outside go on to the main window, which takes drops anywhere.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QWidget,
)

from ..jobs import QueueItem, Status
from .queue_model import STATUS_COLORS, THUMB_SIDE, Column, QueueModel

__all__ = ["QueueTable"]

EMPTY_HINT = ("Drop photos or folders anywhere in this window\n\n"
              "or use Add files (Ctrl+O), Add folder (Ctrl+Shift+O)\n"
              "or paste an image (Ctrl+V)")


class _StatusDelegate(QStyledItemDelegate):
    """A coloured dot before the status word."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex):
        item: QueueItem = index.data(Qt.ItemDataRole.UserRole)
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        text = opt.text
        opt.text = ""
        style = opt.widget.style() if opt.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = option.rect
        d = 9
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(STATUS_COLORS[item.status])
        painter.drawEllipse(r.left() + 8, r.center().y() - d // 2, d, d)
        selected = option.state & QStyle.StateFlag.State_Selected
        painter.setPen(option.palette.color(QPalette.ColorRole.HighlightedText) if selected
                       else STATUS_COLORS[item.status])
        painter.drawText(r.adjusted(8 + d + 6, 0, -4, 0),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text)
        painter.restore()


class _ProgressDelegate(QStyledItemDelegate):
    """A progress bar with the percentage and ETA while running; text otherwise."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex):
        item: QueueItem = index.data(Qt.ItemDataRole.UserRole)
        if item.status is not Status.RUNNING:
            return super().paint(painter, option, index)
        style = option.widget.style() if option.widget else QApplication.style()
        background = QStyleOptionViewItem(option)
        self.initStyleOption(background, index)
        background.text = ""
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, background, painter,
                          option.widget)
        bar = QStyleOptionProgressBar()
        bar.rect = QRect(option.rect.adjusted(6, 0, -6, 0))
        bar.rect.setHeight(min(22, option.rect.height() - 8))
        bar.rect.moveCenter(option.rect.center())
        bar.minimum, bar.maximum = 0, 1000
        busy = bool(item.stage) and item.progress == 0
        bar.progress = -1 if busy else round(item.progress * 1000)
        if busy:
            bar.minimum = bar.maximum = 0
        bar.text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.palette = option.palette
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)


class QueueTable(QTableView):
    def __init__(self, model: QueueModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setModel(model)
        self.setAccessibleName("Queue")
        self.setAccessibleDescription("Photos to upscale; drag rows to change the order")
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setDragDropOverwriteMode(False)
        self.setDropIndicatorShown(True)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setIconSize(QSize(THUMB_SIDE, THUMB_SIDE))
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(THUMB_SIDE + 8)
        header = self.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionResizeMode(Column.THUMB, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(Column.NAME, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(Column.SIZE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(Column.STATUS, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(Column.PROGRESS, QHeaderView.ResizeMode.Interactive)
        self.setColumnWidth(Column.THUMB, THUMB_SIDE + 12)
        self.setColumnWidth(Column.STATUS, 104)
        self.setColumnWidth(Column.PROGRESS, 170)
        self.setItemDelegateForColumn(Column.STATUS, _StatusDelegate(self))
        self.setItemDelegateForColumn(Column.PROGRESS, _ProgressDelegate(self))

    def selected_rows(self) -> list[int]:
        return sorted({i.row() for i in self.selectionModel().selectedRows()})

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.model().rowCount() == 0:  # the empty state: what to do first
            painter = QPainter(self.viewport())
            area = self.viewport().rect().adjusted(16, 16, -16, -16)
            icon = QApplication.windowIcon()
            if not icon.isNull():
                painter.setOpacity(0.55)
                side = 72
                painter.drawPixmap(area.center().x() - side // 2, area.center().y() - side - 40,
                                   icon.pixmap(side, side))
                painter.setOpacity(1.0)
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             EMPTY_HINT)
