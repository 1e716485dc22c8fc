"""The app's log: standard ``logging`` into a rotating file in the user's log folder.

The file is ``<platformdirs user_log_dir>/bimacosr.log`` (for example
``~/.local/state/BiMaCoSR Upscaler/log/bimacosr.log`` on Linux), or
``$BIMACOSR_LOG_DIR/bimacosr.log`` when that variable is set. :func:`setup_logging` is called
once by each entry point (CLI, window); errors that ``jobs`` catches for the user's message
are written there with their traceback, and the window's Help > Show log opens the file.
Nothing here imports Qt.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

from platformdirs import user_log_dir

from . import APP_NAME

__all__ = ["log_file_path", "setup_logging"]

LOG_NAME = "bimacosr.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"


def log_file_path() -> Path:
    override = os.environ.get("BIMACOSR_LOG_DIR")
    folder = Path(override) if override else Path(user_log_dir(APP_NAME, appauthor=False))
    return folder / LOG_NAME


def setup_logging(level: int = logging.INFO) -> Path | None:
    """Send the package's log records (``bimacosr_app.*``) to the log file (1 MB, three old
    files kept). Idempotent. Returns the file, or None when it cannot be opened (an
    unwritable home must not stop the app; records then go nowhere)."""
    logger = logging.getLogger("bimacosr_app")
    path = log_file_path()
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path:
            return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=1_000_000, backupCount=3,
                                                       encoding="utf-8", delay=True)
    except OSError:
        return None
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level)
    return path
