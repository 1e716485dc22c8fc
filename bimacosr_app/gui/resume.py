"""The queue on disk: saved shortly after every change (and at once on close), and the queue the
last session left unfinished, offered in a bar above the queue until it is resumed or discarded.
Until then it is saved ahead of the new queue, so quitting again still keeps it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer

from ..jobs import QueueItem, Status
from .notice_bar import NoticeBar

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["SavedQueue"]

SAVE_DELAY_MS = 250


class SavedQueue:
    """Saves ``window``'s queue to its store; :attr:`bar` is the resume bar (with
    :attr:`resume_button` and :attr:`discard_button`), for the window to place, and
    :meth:`offer` shows it when the store holds unfinished work."""

    def __init__(self, window: MainWindow) -> None:
        self._window = window
        self._pending: list[QueueItem] = []
        self._save_timer = QTimer(window, singleShot=True, interval=SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_now)
        self.bar = NoticeBar("resumeBar", window)
        self.resume_button = self.bar.add_button("Resume", "Resume the previous queue",
                                                 default=True)
        self.discard_button = self.bar.add_button("Discard", "Discard the previous queue")
        self.resume_button.clicked.connect(self.resume)
        self.discard_button.clicked.connect(self.discard)
        window.model.saveNeeded.connect(self._save_timer.start)

    def offer(self) -> None:
        """Show the resume bar when the last session left photos to upscale."""
        self._pending = self._window.store.unfinished()
        if self._pending:
            n = sum(it.status is Status.QUEUED for it in self._pending)
            self.bar.show_notice(
                f"The last session ended with {n} photo{'s' * (n != 1)} still to upscale.")

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
