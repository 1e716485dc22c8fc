"""Help dialogs: keyboard shortcuts (built from the window's own actions) and About."""

from __future__ import annotations

import platform

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import __version__

__all__ = ["AboutDialog", "ShortcutsDialog"]

#: Gestures and held keys that are not menu actions.
EXTRA_SHORTCUTS = (
    ("Compare", "Show the original while held (flicker mode)", "Space"),
    ("Compare", "Zoom about the pointer", "Mouse wheel / pinch"),
    ("Compare", "Pan", "Drag / arrow keys"),
    ("Compare", "Move the slider", "Drag the divider"),
    ("Queue", "Reorder", "Drag rows"),
)


class ShortcutsDialog(QDialog):
    """Every action with a shortcut, by menu, plus the gestures of the compare view."""

    def __init__(self, menus: list[tuple[str, list[QAction]]], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = [(menu.replace("&", ""), action.text().replace("&", "").rstrip("…"),
                 " / ".join(s.toString(QKeySequence.SequenceFormat.NativeText)
                            for s in action.shortcuts()))
                for menu, actions in menus for action in actions if action.shortcuts()]
        rows += list(EXTRA_SHORTCUTS)
        self.table = QTableWidget(len(rows), 3)
        self.table.setAccessibleName("Keyboard shortcuts")
        self.table.setHorizontalHeaderLabels(["Area", "Action", "Shortcut"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(560, 600)


class AboutDialog(QDialog):
    """Version, model hash and backend. :meth:`set_model` fills in the model once loaded."""

    def __init__(self, icon: QIcon, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About BiMaCoSR Upscaler")
        logo = QLabel()
        if not icon.isNull():
            logo.setPixmap(icon.pixmap(96, 96))
        logo.setAlignment(Qt.AlignmentFlag.AlignTop)
        title = QLabel(f"<h2>BiMaCoSR Upscaler</h2><p>Version {__version__}</p>")
        blurb = QLabel("Offline photo upscaling (4×, also 2× and 3×) with a 1-bit one-step "
                       "diffusion super-resolution model, after BiMaCoSR (Liu et al., ICML "
                       "2025). No telemetry: nothing leaves this computer.")
        blurb.setWordWrap(True)
        self.model = QLabel("not loaded yet")
        self.backend = QLabel("not loaded yet")
        for label in (self.model, self.backend):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
        self.model.setAccessibleName("Model hash")
        self.backend.setAccessibleName("Backend")
        form = QFormLayout()
        form.addRow("Model (SHA-256):", self.model)
        form.addRow("Backend:", self.backend)
        form.addRow("Runtime:", QLabel(f"Python {platform.python_version()}, "
                                       f"PySide6 {pyside_version}"))
        text = QVBoxLayout()
        text.addWidget(title)
        text.addWidget(blurb)
        text.addLayout(form)
        top = QHBoxLayout()
        top.addWidget(logo)
        top.addLayout(text, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(buttons)
        self.setMinimumWidth(560)

    def set_model(self, sha256: str, backend: str) -> None:
        self.model.setText(sha256)
        self.backend.setText(backend)
