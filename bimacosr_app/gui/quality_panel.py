"""The panel under the queue: facts about the selected item.

Queued: the time and memory estimate. Running: the stage. Done: the consistency check (PSNR-Y
and SSIM-Y of the output brought back to the input size, colour shift, seam score), time
taken, backend, tile settings and model, with a warning box when something looks wrong or
the job said something about its result (its warnings).
Failed: the whole error, wrapped anywhere (a long path has no spaces to wrap at), never
clipped.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextOption
from PySide6.QtWidgets import QFormLayout, QFrame, QLabel, QTextEdit, QVBoxLayout, QWidget

from ..jobs import QualityReport, QueueItem, Status, format_duration

__all__ = ["QualityPanel"]

_ROWS = ("Consistency", "Colour shift", "Seams", "Time", "Backend", "Tiles", "Model",
         "Estimate", "Output")


class _ErrorText(QTextEdit):
    """Read-only plain text that wraps anywhere and is as tall as its lines, so the whole
    message can be read and copied."""

    def __init__(self) -> None:
        super().__init__()
        self.setReadOnly(True)
        self.setAcceptRichText(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setStyleSheet("QTextEdit { color: #d64541; background: transparent; }")
        self.document().setDocumentMargin(0)
        self.textChanged.connect(self._fit_height)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_height()

    def _fit_height(self) -> None:
        """As tall as the text wrapped at the current width."""
        self.setFixedHeight(math.ceil(self.document().size().height()) + 2 * self.frameWidth())


class QualityPanel(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName("Result details")
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.title.setWordWrap(True)
        self.hint = QLabel("Add photos, then select one to see its time and memory estimate "
                           "or, once upscaled, its quality check.")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("QLabel { color: palette(placeholder-text); }")
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setAccessibleName("Quality warning")
        self.warning.setStyleSheet("QLabel { background: #fff3cd; color: #664d03; "
                                   "border: 1px solid #e0c36a; border-radius: 4px; "
                                   "padding: 6px; }")
        self.error = _ErrorText()
        self.error.setAccessibleName("Error")
        self.values: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(3)
        self._form = form
        for name in _ROWS:
            label = QLabel()
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            label.setAccessibleName(name)
            self.values[name] = label
            form.addRow(f"{name}:", label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(6)
        layout.addWidget(self.title)
        layout.addWidget(self.hint)
        layout.addWidget(self.error)
        layout.addWidget(self.warning)
        layout.addLayout(form)
        layout.addStretch(1)
        self.show_item(None)

    def _set(self, **values: str) -> None:
        for name in _ROWS:
            text = values.get(name.lower().replace(" ", "_"), "")
            self.values[name].setText(text)
            self._form.setRowVisible(self.values[name], bool(text))

    def show_item(self, item: QueueItem | None, report: QualityReport | None = None,
                  estimate: str = "", analysing: bool = False) -> None:
        """Describe ``item``; ``report`` once its result was analysed; ``estimate`` while it
        waits."""
        self.warning.hide()
        self.error.hide()
        self.hint.setVisible(item is None)
        if item is None:
            self.title.setText("No item selected")
            self._set()
            return
        self.title.setText(f"{item.input.name} — {item.status.label}")
        if item.error:
            self.error.setPlainText(item.error)
            self.error.show()
        warnings = list(item.warnings)
        info = {}
        if item.status is Status.QUEUED:
            info["estimate"] = estimate
        if item.status is Status.RUNNING:
            info["estimate"] = item.stage or f"{item.progress:.0%}"
        if item.status is Status.DONE:
            info.update(
                time=format_duration(item.seconds) if item.seconds is not None else "",
                backend=item.backend, tiles=item.tiles,
                model=item.model[:16] if item.model else "",
                output=str(item.output) if item.output else "")
            if report is not None:
                ssim = "" if math.isnan(report.ssim) else f", SSIM-Y {report.ssim:.4f}"
                crop = " (central crop)" if report.cropped else ""
                info["consistency"] = f"PSNR-Y {report.psnr:.2f} dB{ssim}{crop}"
                info["colour_shift"] = "R {:+.2f}  G {:+.2f}  B {:+.2f} levels".format(
                    *report.colour_shift)
                info["seams"] = ("no tile cut in the measured area" if math.isnan(
                    report.seam_score) else f"{report.seam_score:.2f}× surroundings")
                warnings += report.warnings
            elif analysing:
                info["consistency"] = "Analysing…"
        if warnings:
            self.warning.setText("⚠ " + "\n⚠ ".join(warnings))
            self.warning.show()
        self._set(**info)
