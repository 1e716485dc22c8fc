"""Batch progress outside the window, where the platform offers it.

* The application badge (``QGuiApplication.setBadgeNumber``: macOS dock, Windows taskbar,
  Linux launchers that speak the Unity launcher API) counts the photos still to do.
* On Linux, a progress bar on the launcher icon (KDE Plasma task manager, Ubuntu dock,
  Dash to Dock) through the ``com.canonical.Unity.LauncherEntry`` D-Bus signal.
"""

from __future__ import annotations

import sys

from PySide6.QtGui import QGuiApplication

__all__ = ["TaskbarProgress"]

_DBUS_PATH = "/com/bimacosr/Upscaler"
_DBUS_INTERFACE = "com.canonical.Unity.LauncherEntry"


class TaskbarProgress:
    def __init__(self) -> None:
        self._bus = None
        if sys.platform.startswith("linux"):
            from PySide6.QtDBus import QDBusConnection

            bus = QDBusConnection.sessionBus()
            self._bus = bus if bus.isConnected() else None

    def update(self, fraction: float | None, remaining: int) -> None:
        """``fraction`` of the batch done (None: no batch running); ``remaining`` items."""
        QGuiApplication.instance().setBadgeNumber(remaining if fraction is not None else 0)
        if self._bus is None:
            return
        from PySide6.QtDBus import QDBusMessage

        app_uri = f"application://{QGuiApplication.desktopFileName() or 'bimacosr-gui'}.desktop"
        message = QDBusMessage.createSignal(_DBUS_PATH, _DBUS_INTERFACE, "Update")
        message.setArguments([app_uri, {
            "progress": float(fraction or 0.0),
            "progress-visible": fraction is not None,
            "count": remaining,
            "count-visible": fraction is not None and remaining > 0,
        }])
        self._bus.send(message)
