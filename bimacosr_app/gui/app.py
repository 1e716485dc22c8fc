"""``bimacosr-gui``: start the application, optionally with photos or folders to queue."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from .. import __version__
from ..bundled import bundled_path
from ..logs import setup_logging
from .display import display_problem
from .main_window import MainWindow
from .settings import APP_NAME, ORG_NAME, Settings
from .theme import apply_theme

__all__ = ["main"]

ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ENGINE_WAIT_S = 120.0  #: the smoke-test hook waits at most this long for the engine thread
NO_DISPLAY_EXIT = 1  #: the exit status when the window cannot open here (see display.py)

log = logging.getLogger(__name__)


def app_icon() -> QIcon:
    """The application icon from the shipped ``icons/`` (an empty icon when not shipped)."""
    icon = QIcon()
    folder = bundled_path("icons")
    for size in ICON_SIZES:
        path = folder / f"bimacosr-{size}.png"
        if path.is_file():
            icon.addFile(str(path))
    return icon


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bimacosr-gui", description="BiMaCoSR Upscaler: the desktop window.")
    parser.add_argument("paths", nargs="*", type=Path, help="photos or folders to queue")
    parser.add_argument("-r", "--recursive", action="store_true",
                        help="include subfolders of the folders given")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def _quit_after_start(window: MainWindow, seconds: float, report: str | None) -> None:
    """Smoke-test hook (``BIMACOSR_QUIT_AFTER=SECONDS``): once the event loop runs (the
    window is interactive), note the time; ``SECONDS`` later, as soon as the engine thread
    has answered (ready or error; at most ``ENGINE_WAIT_S`` more), close the window like a
    user would. With ``BIMACOSR_READY_FILE=PATH`` the times and the engine's state go to PATH
    as JSON (``interactive_at``, ``closing_at``: epoch seconds; ``engine``)."""
    state: dict = {"engine": "starting"}
    window.engine.initialized.connect(
        lambda available, auto, _budget: state.update(engine="ready", backends=available,
                                                      auto=auto))
    window.engine.engineError.connect(lambda message: state.update(engine="error",
                                                                   error=message))

    def interactive() -> None:
        state["interactive_at"] = time.time()
        QTimer.singleShot(int(seconds * 1000), close)

    def close() -> None:
        if state["engine"] == "starting" and time.time() - state["interactive_at"] < (
                seconds + ENGINE_WAIT_S):
            QTimer.singleShot(100, close)
            return
        state["closing_at"] = time.time()
        if report:
            Path(report).write_text(json.dumps(state), encoding="utf-8")
        window.close()

    QTimer.singleShot(0, interactive)


def main(argv: list[str] | None = None) -> int:
    """Run the window until it is closed; returns the exit status (``NO_DISPLAY_EXIT``, with
    the reason on stderr and in the log, when it cannot open here)."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    setup_logging()
    problem = display_problem()
    if problem:  # Qt would abort the process
        log.error("%s", problem)
        print(problem, file=sys.stderr)
        return NO_DISPLAY_EXIT
    QApplication.setApplicationName(APP_NAME)
    QApplication.setOrganizationName(ORG_NAME)
    QApplication.setApplicationVersion(__version__)
    QApplication.setDesktopFileName("bimacosr-gui")
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setWindowIcon(app_icon())
    settings = Settings()
    apply_theme(app, settings.preferences().theme)
    window = MainWindow(settings)
    window.show()
    quit_after = os.environ.get("BIMACOSR_QUIT_AFTER")
    if quit_after:
        _quit_after_start(window, float(quit_after), os.environ.get("BIMACOSR_READY_FILE"))
    if args.paths:
        window.add_paths(args.paths, recursive=args.recursive or None)
    return app.exec()
