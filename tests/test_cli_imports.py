"""The CLI entries that do not upscale import neither torch nor Qt (issue 15): ``--help``,
``--version``, ``upscale --help`` and no command at all load only the option schema (no NumPy,
OpenCV or engine either, which is what keeps them under 0.5 s), and ``info`` reads the model,
lists the backends and finds the GPU without importing torch (engine/probe.py). Each entry
runs in a fresh Python, with torch installed, and reports ``sys.modules``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import json, sys
from bimacosr_app.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exc:
    status = exc.code
heavy = ("torch", "PySide6", "shiboken6", "numpy", "cv2", "bimacosr_app.engine")
print(json.dumps({"status": status,
                  "loaded": sorted(m for m in heavy if sys.modules.get(m) is not None)}))
"""


def _entry(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["upscale", "--help"], []],
                         ids=lambda a: " ".join(a) or "no command")
def test_help_and_version_load_only_the_option_schema(args):
    report = _entry(*args)
    assert report["status"] in (0, 2)  # no command: the help, exit status 2
    assert report["loaded"] == []


def test_info_imports_neither_torch_nor_qt():
    pytest.importorskip("torch")  # installed, so that leaving it out is the code's doing
    report = _entry("info", "--json")
    assert report["status"] == 0
    assert "torch" not in report["loaded"] and "PySide6" not in report["loaded"]
    assert "bimacosr_app.engine" in report["loaded"]  # it did list the backends
