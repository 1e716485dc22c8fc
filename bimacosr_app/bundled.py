"""The data the app ships with: the packed model, the window icons and the self-test data,
kept in the top-level ``resources/`` folder of the source tree (``models/``, ``icons/``,
``selftest/``).

Where a running app finds them, first match wins:

* a PyInstaller bundle: ``<sys._MEIPASS>/resources/...`` (``packaging/bimacosr.spec``);
* an installed wheel: package data ``bimacosr_app/_resources/...``
  (``importlib.resources``; the build copies them there: ``kernels/CMakeLists.txt``);
* a source checkout (an editable install, ``PYTHONPATH=.``): ``<repo>/resources/...``.

Nothing else reads ``resources/`` at run time.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path

__all__ = ["PACKAGE_DATA", "bundled_path"]

PACKAGE_DATA = "_resources"  #: the package-data folder inside ``bimacosr_app`` of a wheel


def bundled_path(relative: str | Path) -> Path:
    """The shipped file or folder ``relative`` to ``resources/`` (e.g.
    ``"models/bimacosr-x4.safetensors"``); the source tree's path when none exists, so that
    errors name the usual place."""
    candidates = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(Path(bundle) / "resources" / relative)
    package = files("bimacosr_app")
    if isinstance(package, Path):  # a package on the file system (not zipped)
        candidates.append(package / PACKAGE_DATA / relative)
    source = Path(__file__).resolve().parents[1] / "resources" / relative
    return next((c for c in candidates if c.exists()), source)
