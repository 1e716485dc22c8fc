"""Entry points: ``bimacosr-gui [paths]`` and ``python -m bimacosr_app`` dispatch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

import bimacosr_app.__main__ as entry
from bimacosr_app import gui
from bimacosr_app.gui import MainWindow
from bimacosr_app.gui.settings import Settings


def test_module_without_arguments_opens_the_window(monkeypatch):
    calls = []
    monkeypatch.setattr(gui, "main", lambda argv: calls.append(argv) or 0)
    monkeypatch.setattr(sys, "argv", ["bimacosr_app"])
    assert entry._run() == 0 and calls == [[]]
    monkeypatch.setattr(sys, "argv", ["bimacosr_app", "--version"])
    with pytest.raises(SystemExit) as exit_info:  # the CLI's argparse answers --version
        entry._run()
    assert exit_info.value.code == 0 and calls == [[]]


def test_gui_main_queues_paths_from_the_command_line(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("BIMACOSR_CONFIG_DIR", str(tmp_path / "config"))
    settings = Settings(tmp_path / "config" / "settings.ini")
    for name in ("cpu-packed", "reference"):
        settings.set_calibration(name, 1.0)  # measured already: no model load at start
    monkeypatch.setenv("BIMACOSR_DATA_DIR", str(tmp_path / "data"))
    photo = tmp_path / "photo.png"
    Image.new("RGB", (16, 12), "teal").save(photo)
    seen = []

    def inspect_and_close():
        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow))
        if window.model.rowCount() == 0:  # the scan runs in the background
            QTimer.singleShot(50, inspect_and_close)
            return
        seen.extend(it.input for it in window.model.items())
        seen.append(QApplication.applicationName())
        seen.append(window.settings.path)
        window.close()

    QTimer.singleShot(100, inspect_and_close)
    assert gui.main([str(photo)]) == 0
    assert seen == [photo, "BiMaCoSR Upscaler", tmp_path / "config" / "settings.ini"]
    assert not QApplication.windowIcon().isNull()


def test_screenshot_script_drives_the_window_through_its_states(tmp_path):
    """``scripts/screenshots.py`` (docs/screenshots/) runs the real window to the end."""
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, str(root / "scripts" / "screenshots.py"), "--out", str(tmp_path)],
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(root)},
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(p.name for p in (root / "docs" / "screenshots").glob("*.png"))
    for name in names:
        with Image.open(tmp_path / name) as shot:
            pixels = np.asarray(shot.convert("L"))
        assert min(pixels.shape) >= 300 and pixels.std() > 10, name  # a window, not a blank
