"""The settings dialog: edits a :class:`~.settings.Preferences` (saved by the caller).

Choices, their labels, ranges, help (tooltips) and the naming check come from the one option
schema (:data:`bimacosr_app.jobs.OPTIONS`); the layout is this module's."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..jobs import backend_needs, option
from .settings import Preferences

__all__ = ["SettingsDialog"]


def _combo(name: str) -> QComboBox:
    """A combo box of the option's choices (their labels; the values as item data)."""
    opt = option(name)
    combo = QComboBox()
    combo.setAccessibleName(opt.label)
    combo.setToolTip(opt.help)
    for value, label in opt.choices.items():
        combo.addItem(label, value)
    return combo


def _spin(name: str, **kwargs) -> QSpinBox:
    """A spin box over the option's range."""
    opt = option(name)
    spin = QSpinBox(minimum=int(opt.minimum), maximum=int(opt.maximum), **kwargs)
    spin.setAccessibleName(opt.label)
    spin.setToolTip(opt.help)
    return spin


def _select(combo: QComboBox, value) -> None:
    combo.setCurrentIndex(max(0, combo.findData(value)))


class SettingsDialog(QDialog):
    """``available``: backend names usable here (others are shown disabled);
    ``settings_path``: shown so people can find the file."""

    def __init__(self, prefs: Preferences, available: list[str], settings_path: Path,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)
        tabs = QTabWidget()
        tabs.addTab(self._output_tab(), "Output")
        tabs.addTab(self._engine_tab(available), "Engine")
        tabs.addTab(self._general_tab(), "General")
        path = QLabel(f"Settings file: {settings_path}")
        path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        path.setWordWrap(True)
        path.setStyleSheet("QLabel { color: palette(placeholder-text); }")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(
            lambda: self.set_preferences(Preferences()))
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(path)
        layout.addWidget(buttons)
        self.set_preferences(prefs)

    # -- pages -------------------------------------------------------------------------------

    def _output_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.scale = _combo("scale")
        form.addRow("&Scale:", self.scale)

        self.next_to = QRadioButton("Next to the originals")
        self.in_folder = QRadioButton("In this folder:")
        group = QButtonGroup(self)
        group.addButton(self.next_to)
        group.addButton(self.in_folder)
        self.folder = QLineEdit()
        self.folder.setAccessibleName("Output folder")
        self.folder.setPlaceholderText("Choose a folder…")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.in_folder.toggled.connect(self.folder.setEnabled)
        self.in_folder.toggled.connect(browse.setEnabled)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.in_folder)
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        form.addRow("Save to:", self.next_to)
        form.addRow("", folder_row)

        self.template = QLineEdit()
        self.template.setAccessibleName(option("naming").label)
        self.template.setToolTip(option("naming").help)
        self.example = QLabel()
        self.example.setStyleSheet("QLabel { color: palette(placeholder-text); }")
        self.template.textChanged.connect(self._update_example)
        form.addRow("File &name:", self.template)
        form.addRow("", self.example)

        self.format = _combo("format")
        self.format.currentIndexChanged.connect(self._update_example)
        self.format.currentIndexChanged.connect(self._update_quality)
        self.scale.currentIndexChanged.connect(self._update_example)
        form.addRow("&Format:", self.format)
        self.quality = _spin("quality", suffix=" %")
        form.addRow("&Quality:", self.quality)
        self.strip = QCheckBox("Strip metadata (EXIF, colour profile, provenance)")
        self.strip.setToolTip(option("strip_metadata").help)
        form.addRow("Metadata:", self.strip)
        self.on_exists = _combo("on_exists")
        form.addRow("If the file &exists:", self.on_exists)
        return page

    def _engine_tab(self, available: list[str]) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.backend = _combo("backend")
        model = self.backend.model()
        if isinstance(model, QStandardItemModel):
            for i, name in enumerate(option("backend").choices):
                if name != "auto" and name not in available:
                    entry = model.item(i)
                    entry.setEnabled(False)
                    entry.setText(f"{entry.text()} (not available here)")
                    needs = backend_needs(name)  # e.g. cuda: the GPU, torch, the [cuda] extra
                    if needs:
                        entry.setToolTip(f"Needs {needs}")
        form.addRow("&Backend:", self.backend)
        self.device = _combo("device")
        self.device.setToolTip("Where the reference backend runs; the others pick their own")
        form.addRow("&Device:", self.device)
        self.backend.currentIndexChanged.connect(
            lambda: self.device.setEnabled(self.backend.currentData() == "reference"))
        self.memory = _spin("tile_budget_mb", singleStep=256, suffix=" MB")
        self.memory.setMinimum(self.memory.minimum() - 1)  # one below the range: automatic
        self.memory.setSpecialValueText("Automatic")
        form.addRow("&Memory budget:", self.memory)
        note = QLabel("Everything runs on this computer; nothing is sent anywhere.")
        note.setWordWrap(True)
        form.addRow(note)
        return page

    def _general_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.theme = _combo("theme")
        form.addRow("&Theme:", self.theme)
        self.recursive = QCheckBox("Include subfolders when adding a folder")
        self.recursive.setToolTip(option("recursive").help)
        form.addRow("Folders:", self.recursive)
        return page

    # -- values ------------------------------------------------------------------------------

    def set_preferences(self, p: Preferences) -> None:
        _select(self.scale, p.scale)
        self.next_to.setChecked(not p.output_folder)
        self.in_folder.setChecked(bool(p.output_folder))
        self.folder.setText(p.output_folder)
        self.folder.setEnabled(bool(p.output_folder))
        self.template.setText(p.naming)
        _select(self.format, p.format)
        self.quality.setValue(p.quality)
        self.strip.setChecked(p.strip_metadata)
        _select(self.on_exists, p.on_exists)
        _select(self.backend, p.backend)
        _select(self.device, p.device)
        self.device.setEnabled(p.backend == "reference")
        self.memory.setValue(self.memory.minimum() if p.tile_budget_mb is None
                             else round(p.tile_budget_mb))
        _select(self.theme, p.theme)
        self.recursive.setChecked(p.recursive)
        self._update_example()
        self._update_quality()

    def preferences(self) -> Preferences:
        folder = self.folder.text().strip() if self.in_folder.isChecked() else ""
        return Preferences(
            scale=self.scale.currentData(), output_folder=folder,
            naming=self.template.text().strip(), format=self.format.currentData(),
            quality=self.quality.value(), strip_metadata=self.strip.isChecked(),
            on_exists=self.on_exists.currentData(), backend=self.backend.currentData(),
            device=self.device.currentData(),
            tile_budget_mb=None if self.memory.value() == self.memory.minimum()
            else float(self.memory.value()),
            theme=self.theme.currentData(), recursive=self.recursive.isChecked(),
        ).validated()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _update_quality(self) -> None:
        self.quality.setEnabled(self.format.currentData() in ("same", "jpg", "webp"))

    def _update_example(self) -> None:
        template = self.template.text()
        problem = option("naming").problem(template)
        if problem:
            self.example.setText(f"Invalid name template: {problem}")
            return
        fmt = self.format.currentData() or "same"
        ext = "jpg" if fmt == "same" else fmt
        name = template.format(stem="IMG_0042", scale=self.scale.currentData(), ext=ext)
        self.example.setText(f"IMG_0042.jpg → {name}")
