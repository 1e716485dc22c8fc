"""Light, dark or system appearance.

"system" keeps the platform style and palette (and follows its colour scheme); "light" and
"dark" use the Fusion style with a fixed palette so they look the same everywhere.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

__all__ = ["apply_theme"]

_DARK = {
    QPalette.ColorRole.Window: "#2b2d31",
    QPalette.ColorRole.WindowText: "#e8e8ea",
    QPalette.ColorRole.Base: "#1f2024",
    QPalette.ColorRole.AlternateBase: "#26282c",
    QPalette.ColorRole.ToolTipBase: "#3a3d42",
    QPalette.ColorRole.ToolTipText: "#f0f0f0",
    QPalette.ColorRole.PlaceholderText: "#9a9ca3",
    QPalette.ColorRole.Text: "#e8e8ea",
    QPalette.ColorRole.Button: "#34363b",
    QPalette.ColorRole.ButtonText: "#e8e8ea",
    QPalette.ColorRole.BrightText: "#ff6b6b",
    QPalette.ColorRole.Highlight: "#3d7be0",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#6ea8ff",
    QPalette.ColorRole.Light: "#45484e",
    QPalette.ColorRole.Midlight: "#3a3d42",
    QPalette.ColorRole.Mid: "#2f3136",
    QPalette.ColorRole.Dark: "#1b1c1f",
    QPalette.ColorRole.Shadow: "#101012",
}
_LIGHT = {
    QPalette.ColorRole.Window: "#f3f3f5",
    QPalette.ColorRole.WindowText: "#1d1d1f",
    QPalette.ColorRole.Base: "#ffffff",
    QPalette.ColorRole.AlternateBase: "#f6f7f9",
    QPalette.ColorRole.ToolTipBase: "#ffffe8",
    QPalette.ColorRole.ToolTipText: "#1d1d1f",
    QPalette.ColorRole.PlaceholderText: "#6e7079",
    QPalette.ColorRole.Text: "#1d1d1f",
    QPalette.ColorRole.Button: "#e9e9ec",
    QPalette.ColorRole.ButtonText: "#1d1d1f",
    QPalette.ColorRole.BrightText: "#d00000",
    QPalette.ColorRole.Highlight: "#2f6fd6",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#1a5fc8",
}

_STYLE_PROPERTY = "bimacosr-system-style"


def apply_theme(app: QApplication, theme: str) -> None:
    """Apply "system", "light" or "dark" to ``app``."""
    system_style = app.property(_STYLE_PROPERTY)
    if system_style is None:  # remember the platform's style before replacing it
        system_style = app.style().name()
        app.setProperty(_STYLE_PROPERTY, system_style)
    hints = app.styleHints()
    if theme == "system":
        app.setStyle(QStyleFactory.create(system_style))
        hints.unsetColorScheme()
        app.setPalette(app.style().standardPalette())
        return
    app.setStyle(QStyleFactory.create("Fusion"))
    dark = theme == "dark"
    hints.setColorScheme(Qt.ColorScheme.Dark if dark else Qt.ColorScheme.Light)
    palette = QPalette(app.style().standardPalette())
    for role, color in (_DARK if dark else _LIGHT).items():
        palette.setColor(role, QColor(color))
    disabled = QColor("#74767c" if dark else "#a2a4aa")
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    app.setPalette(palette)
