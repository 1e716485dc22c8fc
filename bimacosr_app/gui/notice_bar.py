"""A bar above the queue that tells something and offers what to do about it (resume the last
queue, add the subfolders left out); hidden until :meth:`NoticeBar.show_notice`."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

__all__ = ["NoticeBar"]


class NoticeBar(QFrame):
    """A message (:attr:`label`) and the buttons added with :meth:`add_button`."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setStyleSheet(f"#{name} {{ background: palette(alternate-base); "
                           "border: 1px solid palette(highlight); border-radius: 6px; }")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(10, 6, 6, 6)
        self._row.addWidget(self.label, 1)
        self.hide()

    def add_button(self, text: str, accessible_name: str, default: bool = False) -> QPushButton:
        button = QPushButton(text)
        button.setAccessibleName(accessible_name)
        button.setDefault(default)
        self._row.addWidget(button)
        return button

    def show_notice(self, text: str) -> None:
        self.label.setText(text)
        self.show()
