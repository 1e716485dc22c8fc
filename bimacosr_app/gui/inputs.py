"""Adding photos to the queue: the Add files and Add folder dialogs, paste, and drops anywhere on
the window (an overlay says so while files are dragged over it).

Whatever they name is scanned in the background; the photos found are queued and their
thumbnails and pixel sizes read, also in the background. A photo that cannot be read then is
marked failed at once, with the reason. When folders were added without their subfolders and
those hold photos, a bar above the queue offers to add them too.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QPainter,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import QFileDialog, QWidget

from ..jobs import QueueItem, ScanResult, Status, readable_formats
from .notice_bar import NoticeBar

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["PhotoInputs"]

class _DropOverlay(QWidget):
    """Shown over the window while files are dragged over it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hide()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        highlight = self.palette().color(QPalette.ColorRole.Highlight)
        fill = self.palette().color(QPalette.ColorRole.Window)
        fill.setAlpha(235)
        painter.fillRect(self.rect(), fill)
        tint = QColor(highlight)
        tint.setAlpha(40)
        painter.fillRect(self.rect(), tint)
        pen = QPen(highlight, 3, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawRoundedRect(self.rect().adjusted(12, 12, -12, -12), 14, 14)
        font = painter.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(highlight)
        painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                         "Drop photos or folders to add them to the queue")


def _file_filter() -> str:
    patterns = " ".join(f"*{ext}" for exts in readable_formats().values() for ext in exts)
    return f"Images ({patterns});;All files (*)"


class PhotoInputs(QObject):
    """Queues the photos the user points ``window`` to. Filters the window's events to take
    drops on it (drags over its children that do not take them end up there too).
    :attr:`subfolder_bar` is the hint about subfolders left out, for the window to place."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        self.overlay = _DropOverlay(window)
        self.subfolder_bar = NoticeBar("subfolderBar", window)
        self.add_subfolders_button = self.subfolder_bar.add_button(
            "Add them too", "Add the photos of the subfolders too", default=True)
        self.always_subfolders_button = self.subfolder_bar.add_button(
            "Always include subfolders", "Always include subfolders when adding a folder")
        dismiss = self.subfolder_bar.add_button("Dismiss", "Dismiss the subfolder hint")
        self.add_subfolders_button.clicked.connect(self._add_subfolders)
        self.always_subfolders_button.clicked.connect(self._always_add_subfolders)
        dismiss.clicked.connect(self.subfolder_bar.hide)
        self._left_out: list[Path] = []
        window.installEventFilter(self)
        window.loaders.scanned.connect(self._scanned)
        window.loaders.thumbnailReady.connect(self._thumbnail_ready)
        window.loaders.thumbnailFailed.connect(self._unreadable)

    def add_paths(self, paths: list[str | Path], recursive: bool | None = None) -> None:
        """Queue the images among ``paths`` (folders are scanned in the background)."""
        if paths:
            prefs = self._window.prefs
            self._window.statusBar().showMessage("Looking for photos…")
            self._window.loaders.scan([Path(p) for p in paths],
                                      prefs.recursive if recursive is None else recursive)

    def open_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self._window, "Add photos", "", _file_filter())
        self.add_paths(files)

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._window, "Add a folder of photos")
        if folder:
            self.add_paths([folder])

    def paste(self) -> None:
        """Files copied in a file manager, or image data (saved as PNG in the data dir)."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            return
        status = self._window.statusBar()
        if mime.hasUrls():
            self.add_paths([u.toLocalFile() for u in mime.urls() if u.isLocalFile()])
        elif mime.hasImage():
            image = QGuiApplication.clipboard().image()
            folder = self._window.store.folder / "Pasted"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"pasted-{datetime.now():%Y%m%d-%H%M%S-%f}.png"
            if image.isNull() or not image.save(str(path), "PNG"):
                status.showMessage("The clipboard image could not be saved", 5000)
                return
            self.add_paths([path])
        else:
            status.showMessage("The clipboard holds no image or files", 5000)

    def load_thumbnails(self, items: list[QueueItem]) -> None:
        """Read the items' thumbnails and pixel sizes in the background."""
        for item in items:
            self._window.loaders.thumbnail(item.id, item.input)

    def _add_subfolders(self) -> None:
        self.subfolder_bar.hide()
        self.add_paths(self._left_out, recursive=True)

    def _always_add_subfolders(self) -> None:
        self._window.apply_preferences(replace(self._window.prefs, recursive=True))
        self._add_subfolders()

    def _scanned(self, result: ScanResult) -> None:
        window = self._window
        if result.subfolders_left_out:
            self._left_out = result.subfolders_left_out
            names = ", ".join(f"'{p.name}'" for p in self._left_out)
            self.subfolder_bar.show_notice(
                f"{names} {'has' if len(self._left_out) == 1 else 'have'} photos in "
                "subfolders, which were not added (subfolders are included only when set so).")
        new = window.model.add_items([QueueItem(input=f.file, scale=window.prefs.scale,
                                                subfolder=f.subfolder) for f in result.found])
        self.load_thumbnails(new)
        message = (f"Added {len(new)} photo{'s' * (len(new) != 1)} to the queue" if new
                   else "No new photos to add")
        if result.problems:
            message += ": " + "; ".join(result.problems)
        window.statusBar().showMessage(message, 8000)
        if new and window.table.selectionModel().selectedRows() == []:
            window.table.selectRow(window.model.row_of(new[0].id))

    def _unreadable(self, item_id: str, message: str) -> None:
        """A queued photo that cannot be read fails now, with the reason, rather than when its
        turn comes."""
        item = self._window.model.item_by_id(item_id)
        if item is not None and item.status is Status.QUEUED:
            self._window.model.update_item(item_id, status=Status.FAILED, error=message)

    def _thumbnail_ready(self, item_id: str, image, size) -> None:
        model = self._window.model
        if model.item_by_id(item_id) is not None:
            model.set_thumbnail(item_id, image)
            model.update_item(item_id, in_size=tuple(size))
            self._window.engine_status.refresh_estimates()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Takes the window's drags and drops; keeps the overlay the window's size."""
        kind = event.type()
        if kind == QEvent.Type.Resize:
            self.overlay.setGeometry(self._window.rect())
            return False
        if kind == QEvent.Type.DragEnter:
            self._drag_enter(event)
        elif kind == QEvent.Type.DragMove:
            if event.mimeData().hasUrls():
                event.acceptProposedAction()
        elif kind == QEvent.Type.DragLeave:
            self.overlay.hide()
        elif kind == QEvent.Type.Drop:
            self._drop(event)
        else:
            return False
        return True

    def _drag_enter(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
            self.overlay.setGeometry(self._window.rect())
            self.overlay.raise_()
            self.overlay.show()

    def _drop(self, event: QDropEvent) -> None:
        self.overlay.hide()
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.add_paths([u.toLocalFile() for u in urls])
