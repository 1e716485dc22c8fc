"""Entry points: ``bimacosr-gui [paths]`` and ``python -m bimacosr_app`` dispatch; where the
window cannot open (no display, Qt's X11 libraries missing) it says why instead of aborting."""

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
from bimacosr_app.gui.display import XCB_LIBRARIES, display_problem
from bimacosr_app.gui.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


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
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshots.py"), "--out", str(tmp_path)],
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(p.name for p in (ROOT / "docs" / "screenshots").glob("*.png"))
    for name in names:
        with Image.open(tmp_path / name) as shot:
            pixels = np.asarray(shot.convert("L"))
        assert min(pixels.shape) >= 300 and pixels.std() > 10, name  # a window, not a blank


def test_the_display_check_names_what_is_missing_and_points_to_the_cli():
    def all_load(_library):
        return True

    def none_load(_library):
        return False

    x11 = {"DISPLAY": ":0"}
    assert display_problem(x11, "linux", all_load) == ""
    stock = {"libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"}
    problem = display_problem(x11, "linux", lambda library: library not in stock)
    assert "libxcb-cursor.so.0, libxcb-icccm.so.4, libxcb-keysyms.so.1" in problem
    assert "sudo apt install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1\n" in problem
    assert "command line works without a display: bimacosr upscale" in problem
    assert display_problem(x11, "linux", none_load).count("libxcb") >= len(XCB_LIBRARIES)
    for no_display in ({}, {"QT_QPA_PLATFORM": "xcb"}, {"XDG_SESSION_TYPE": "x11"}):
        problem = display_problem(no_display, "linux", all_load)
        assert problem.startswith("The window cannot open: there is no display")
        assert "bimacosr upscale" in problem
    # Qt does not use xcb there: nothing to check.
    for elsewhere in ({"WAYLAND_DISPLAY": "wayland-0"},
                      {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0",
                       "XDG_SESSION_TYPE": "wayland"},
                      {"QT_QPA_PLATFORM": "offscreen"}, {"QT_QPA_PLATFORM": "wayland;xcb"}):
        assert display_problem(elsewhere, "linux", none_load) == "", elsewhere
    assert display_problem({}, "darwin", none_load) == display_problem({}, "win32") == ""


def test_without_a_display_the_window_says_so_instead_of_aborting(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(BIMACOSR_CONFIG_DIR=str(tmp_path / "config"),
               BIMACOSR_DATA_DIR=str(tmp_path / "data"), BIMACOSR_LOG_DIR=str(tmp_path / "log"),
               PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "bimacosr_app"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1, run.stderr  # Qt's abort was -6 (SIGABRT)
    assert "there is no display" in run.stderr and "bimacosr upscale" in run.stderr
    assert "there is no display" in (tmp_path / "log" / "bimacosr.log").read_text()
