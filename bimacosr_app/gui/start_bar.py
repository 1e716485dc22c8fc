"""The bar under the queue that says what Upscale will do before it is pressed: where the results
go (the output folder, changeable here), a warning when that is the photos' own folder, and the
window's most prominent button, which does the next step: "Add photos…" while nothing waits,
"Upscale N photos" once photos are queued, "Upscaling…" (disabled) while they run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QToolButton,
)

from ..jobs import Status

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["StartBar"]

FOLDER_TEXT_WIDTH = 320  #: pixels of the output folder shown (elided in the middle)
NEXT_TO_ORIGINALS = "Next to the originals"
OWN_FOLDER_WARNING = "⚠ the photos' own folder"


class StartBar(QFrame):
    """Follows ``window``'s queue and runner (the window calls :meth:`show_output_folder` when
    its preferences change); :attr:`upscale_button` triggers the window's Upscale action, or
    Add files while nothing is queued."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        self.folder_button = QToolButton()
        self.folder_button.setAccessibleName("Output folder")
        self.folder_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.folder_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        menu = QMenu(self.folder_button)
        self.choose_folder = QAction("Choose a folder…", menu)
        self.choose_folder.triggered.connect(self._choose_folder)
        self.next_to_originals = QAction(NEXT_TO_ORIGINALS, menu)
        self.next_to_originals.triggered.connect(lambda: window.set_output_folder(""))
        menu.addActions([self.choose_folder, self.next_to_originals])
        self.folder_button.setMenu(menu)
        self.warning = QLabel(OWN_FOLDER_WARNING)
        self.warning.setAccessibleName("Output folder warning")
        self.warning.setToolTip("The results are written among the photos they come from: "
                                "choose another folder to keep them apart")
        self.warning.setStyleSheet("QLabel { color: #9a6700; font-weight: bold; }")
        self.upscale_button = QPushButton()
        self.upscale_button.setAccessibleName("Upscale")
        font = self.upscale_button.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.upscale_button.setFont(font)
        self.upscale_button.setMinimumHeight(34)
        self.upscale_button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.upscale_button.setStyleSheet(
            "QPushButton { background: palette(highlight); color: palette(highlighted-text); "
            "border: none; border-radius: 6px; padding: 6px 22px; }"
            "QPushButton:disabled { background: palette(button); "
            "color: palette(placeholder-text); }")
        self.upscale_button.clicked.connect(self._next_step)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Save to:"))
        row.addWidget(self.folder_button)
        row.addWidget(self.warning)
        row.addStretch(1)
        row.addWidget(self.upscale_button)
        model = window.model
        for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset):
            signal.connect(self.show_output_folder)
        for signal in (model.dataChanged, model.rowsInserted, model.rowsRemoved,
                       model.modelReset, window.runner.stateChanged,
                       window.commands.start.changed):
            signal.connect(self._show_upscale)
        self.show_output_folder()
        self._show_upscale()

    def show_output_folder(self, *_args) -> None:
        """Show where the results go, and warn when any photo's is its own folder."""
        window = self._window
        folder = window.prefs.output_folder
        text = NEXT_TO_ORIGINALS
        if folder:
            metrics = self.folder_button.fontMetrics()
            text = metrics.elidedText(folder, Qt.TextElideMode.ElideMiddle, FOLDER_TEXT_WIDTH)
        self.folder_button.setText(text)
        self.folder_button.setToolTip(
            f"The results go to {folder}" if folder else
            "The results go next to each original, in its folder. Click to choose a folder.")
        self.warning.setVisible(any(
            window.output_folder_of(it).resolve() == it.input.parent.resolve()
            for it in window.model.items()))

    def _show_upscale(self, *_args) -> None:
        window = self._window
        runner = window.runner
        queued = window.model.count(Status.QUEUED)
        if runner.running and not runner.pausing:
            label, enabled = "Upscaling…", False
        elif queued:
            label = f"Upscale {queued} photo{'s' * (queued != 1)}"
            enabled = window.commands.start.isEnabled()
        else:
            label, enabled = "Add photos…", True
        self.upscale_button.setText(label)
        self.upscale_button.setEnabled(enabled)

    def _next_step(self) -> None:
        commands = self._window.commands
        if self._window.model.count(Status.QUEUED):
            commands.start.trigger()
        else:
            commands.add_files.trigger()

    def _choose_folder(self) -> None:
        window = self._window
        folder = QFileDialog.getExistingDirectory(window, "Save the results in",
                                                  window.prefs.output_folder or str(Path.home()))
        if folder:
            window.set_output_folder(folder)

