"""How the running batch is doing, wherever the user looks: the total progress bar and the time
left in the status bar, the window title, the taskbar or dock, and when the batch ends its
summary in the status bar, an alert, a tray notification and an Open output folder button.
A photo just finished is selected when nothing is, and its folder remembered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QProgressBar, QSystemTrayIcon, QToolButton

from .. import APP_NAME
from ..jobs import BatchSummary, Status, format_duration
from .taskbar import TaskbarProgress

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["BatchProgress"]


class BatchProgress:
    """Follows ``window``'s runner. :attr:`total_bar`, :attr:`eta_label` and
    :attr:`open_output_button` are status-bar widgets, for the window to place;
    :attr:`last_output` is the folder last written to ("" before any)."""

    def __init__(self, window: MainWindow) -> None:
        self._window = window
        self.total_bar = QProgressBar()
        self.total_bar.setRange(0, 1000)
        self.total_bar.setMaximumWidth(220)
        self.total_bar.setTextVisible(True)
        self.total_bar.setFormat("%p%")
        self.total_bar.setAccessibleName("Total progress")
        self.total_bar.hide()
        self.eta_label = QLabel()
        self.eta_label.setAccessibleName("Time left")
        self.open_output_button = QToolButton()
        self.open_output_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.open_output_button.setAutoRaise(True)
        self.open_output_button.hide()
        self.last_output = ""
        self._taskbar = TaskbarProgress()
        self._tray: QSystemTrayIcon | None = None
        window.runner.stateChanged.connect(self._runner_state)
        window.runner.totalProgress.connect(self._total_progress)
        window.runner.batchFinished.connect(self._batch_finished)
        window.engine.jobDone.connect(self._job_done)

    def shutdown(self) -> None:
        """Take the progress off the taskbar and the icon out of the tray (the window closes)."""
        self._taskbar.update(None, 0)
        if self._tray is not None:
            self._tray.hide()

    def _hide_progress(self) -> None:
        self.total_bar.hide()
        self.eta_label.clear()

    def _job_done(self, item_id: str, _outcome) -> None:
        """A finished photo: remember its folder and show it when nothing is selected."""
        window = self._window
        item = window.model.item_by_id(item_id)
        if item is not None and item.output is not None and item.status is Status.DONE:
            self.last_output = str(item.output.parent)
            if not window.table.selectionModel().hasSelection():
                window.table.selectRow(window.model.row_of(item_id))
        window.commands.update()

    def _runner_state(self) -> None:
        if not self._window.runner.running:
            self._hide_progress()
            self._window.setWindowTitle(APP_NAME)

    def _total_progress(self, fraction: float, eta) -> None:
        if fraction < 0:
            self._hide_progress()
            self._taskbar.update(None, 0)
            return
        self.total_bar.show()
        self.total_bar.setValue(round(fraction * 1000))
        left = self._window.model.count(Status.QUEUED, Status.RUNNING)
        eta_text = f"about {format_duration(eta)} left" if eta is not None else ""
        self.eta_label.setText(f"{left} to go" + (f" · {eta_text}" if eta_text else ""))
        self._window.setWindowTitle(f"{fraction:.0%} — {APP_NAME}")
        self._taskbar.update(fraction, left)

    def _batch_finished(self, summary: BatchSummary) -> None:
        window = self._window
        parts = [f"{summary.done} done"]
        parts += [f"{n} {word}" for n, word in ((summary.failed, "failed"),
                                                (summary.skipped, "skipped"),
                                                (summary.cancelled, "cancelled"),
                                                (summary.warned, "with warnings")) if n]
        text = ", ".join(parts)
        if summary.last_output:
            self.last_output = summary.last_output
            self.open_output_button.show()
        window.statusBar().showMessage(f"Batch finished: {text}", 0)
        QApplication.alert(window)
        if QSystemTrayIcon.isSystemTrayAvailable():
            if self._tray is None:
                self._tray = QSystemTrayIcon(QApplication.windowIcon(), window)
                self._tray.setToolTip(APP_NAME)
                self._tray.messageClicked.connect(window.open_output_folder)
            self._tray.show()
            self._tray.showMessage("Upscaling finished", text,
                                   QSystemTrayIcon.MessageIcon.Information, 8000)
        window.commands.update()
