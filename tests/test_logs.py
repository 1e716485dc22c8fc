"""The log file: setup, what jobs write into it when they fail, and Help > Show log."""

from __future__ import annotations

import logging

import pytest
import torch.nn.functional as F
from PIL import Image
from PySide6.QtGui import QDesktopServices

from bimacosr_app import logs
from bimacosr_app.checkpoint import load_packed
from bimacosr_app.engine import Backend, default_checkpoint_path
from bimacosr_app.gui import MainWindow
from bimacosr_app.gui.settings import Settings
from bimacosr_app.jobs import QueueStore, UpscaleRequest, run_request

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def log_file(tmp_path, monkeypatch):
    """The package logger writing to a fresh file under tmp_path; removed afterwards."""
    monkeypatch.setenv("BIMACOSR_LOG_DIR", str(tmp_path / "log"))
    logger = logging.getLogger("bimacosr_app")
    before = list(logger.handlers)
    path = logs.setup_logging()
    assert path == tmp_path / "log" / logs.LOG_NAME
    assert logs.setup_logging() == path  # idempotent: one handler
    added = [h for h in logger.handlers if h not in before]
    assert len(added) == 1
    yield path
    for handler in added:
        handler.close()
        logger.removeHandler(handler)


class BrokenBackend(Backend):
    """A backend whose model fails: an error the user did not cause."""

    name = "broken-test"

    def upscale(self, lr01, top=0, left=0, seed=0):
        raise RuntimeError("the model exploded")


def test_a_failed_job_logs_its_message_and_traceback(log_file, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    backend = BrokenBackend(load_packed(default_checkpoint_path()), "cpu")
    result = run_request(UpscaleRequest(corrupt, output=tmp_path / "out"), backend)
    assert result.status == "failed"

    good = tmp_path / "photo.png"
    Image.new("RGB", (24, 20), (120, 80, 40)).save(good)
    result = run_request(UpscaleRequest(good, output=tmp_path / "out"), backend)
    assert result.status == "failed" and "the model exploded" in result.error

    text = log_file.read_text(encoding="utf-8")
    warning, error = text.split(" ERROR bimacosr_app.jobs.run ")  # two records, in order
    assert " WARNING bimacosr_app.jobs.run " in warning and "corrupt.png" in warning
    assert "Traceback (most recent call last)" in warning  # where the reader gave up
    assert error.startswith("[MainThread] Cannot upscale") and "photo.png" in error
    assert "Traceback (most recent call last)" in error
    assert 'raise RuntimeError("the model exploded")' in error


def test_help_show_log_opens_the_log_file(log_file, qtbot, tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    settings = Settings(tmp_path / "config" / "settings.ini")
    window = MainWindow(settings, QueueStore(tmp_path / "data"),
                        backend_factory=lambda _name, _device: F)  # never asked for
    qtbot.addWidget(window)
    help_menu = next(actions for title, actions in window._menus if title == "&Help")
    assert window.act_show_log in help_menu

    window.act_show_log.trigger()  # nothing logged yet: the folder
    logging.getLogger("bimacosr_app.test").warning("something to read")
    window.act_show_log.trigger()  # now the file
    assert [u.toLocalFile() for u in opened] == [str(log_file.parent), str(log_file)]
    window.close()
