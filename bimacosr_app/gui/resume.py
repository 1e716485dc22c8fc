"""The queue on disk: saved shortly after every change (and at once on close), and the queue the
last session left unfinished, offered in a bar above the queue until it is resumed or discarded.
Until then it is saved ahead of the new queue, so quitting again still keeps it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from ..jobs import QueueItem, Status

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["SavedQueue"]

SAVE_DELAY_MS = 250


class _ResumeBar(QFrame):
    """Offers to resume the queue the last session left unfinished."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("resumeBar")
        self.setStyleSheet("#resumeBar { background: palette(alternate-base); "
                           "border: 1px solid palette(highlight); border-radius: 6px; }")
        self.label = QLabel()
        self.resume = QPushButton("Resume")
        self.resume.setDefault(True)
        self.discard = QPushButton("Discard")
        self.resume.setAccessibleName("Resume the previous queue")
        self.discard.setAccessibleName("Discard the previous queue")
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 6, 6)
        row.addWidget(self.label, 1)
        row.addWidget(self.resume)
        row.addWidget(self.discard)
        self.hide()


class SavedQueue:
    """Saves ``window``'s queue to its store; :attr:`bar` is the resume bar, for the window to
    place, and :meth:`offer` shows it when the store holds unfinished work."""

    def __init__(self, window: MainWindow) -> None:
        self._window = window
        self._pending: list[QueueItem] = []
        self._save_timer = QTimer(window, singleShot=True, interval=SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_now)
        self.bar = _ResumeBar(window)
        self.bar.resume.clicked.connect(self.resume)
        self.bar.discard.clicked.connect(self.discard)
        window.model.saveNeeded.connect(self._save_timer.start)

    def offer(self) -> None:
        """Show the resume bar when the last session left photos to upscale."""
        self._pending = self._window.store.unfinished()
        if self._pending:
            n = sum(it.status is Status.QUEUED for it in self._pending)
            self.bar.label.setText(
                f"The last session ended with {n} photo{'s' * (n != 1)} still to upscale.")
            self.bar.show()

    def resume(self) -> None:
        """Put the saved queue back (before anything added since) and start it."""
        window = self._window
        pending, self._pending = self._pending, []
        self.bar.hide()
        window.model.reset_items(pending + window.model.items())
        for item in pending:
            item.scale = item.scale or window.prefs.scale
        window.inputs.load_thumbnails(pending)
        window.engine_status.refresh_estimates()
        window.start()

    def discard(self) -> None:
        self._pending = []
        self.bar.hide()
        self.save_now()

    def save_now(self) -> None:
        self._save_timer.stop()
        try:
            self._window.store.save(self._pending + self._window.model.items())
        except OSError as exc:
            self._window.statusBar().showMessage(f"Could not save the queue: {exc}", 8000)
