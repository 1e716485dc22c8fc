"""The desktop window (PySide6): the only package of the app that imports Qt.

Modules: ``app`` (entry point), ``main_window`` and the parts it composes (``actions``,
``inputs``, ``resume``, ``engine_status``, ``progress``, ``selection``); the queue
(``queue_model``, ``queue_view``, ``runner``); the engine thread (``worker``); the compare
view (``compare_view``, ``canvas``, ``imaging``) and the details (``quality_panel``);
``settings``, ``settings_dialog``, ``dialogs``, ``theme``, ``taskbar``, ``loaders``
(background thumbnails, scans and result loading). See docs/GUI.md.
"""

from .app import main
from .main_window import MainWindow

__all__ = ["MainWindow", "main"]
