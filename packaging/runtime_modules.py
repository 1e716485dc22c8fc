"""Print (JSON) every module a real run of the app imports; used by bimacosr.spec.

The run, in a Python where torch cannot be imported (the bundle has none, whatever the build
environment holds): every backend available there (cpu-packed) upscaling the self-test image,
a CLI batch that writes PNG, JPEG, WebP and TIFF outputs through the jobs layer, ``info`` and
the self-test, and the window built on the offscreen Qt platform. The spec derives its hidden
imports from this list and refuses to build when one of its exclusions is imported here. Run
it with the build's Python.
"""

import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

sys.modules["torch"] = None  # type: ignore[assignment]  # as in the bundle: import fails
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        tmp = Path(tmp)
        os.environ["BIMACOSR_CONFIG_DIR"] = str(tmp / "config")
        os.environ["BIMACOSR_DATA_DIR"] = str(tmp / "data")
        from bimacosr_app.cli import main as cli_main
        from bimacosr_app.engine import available_backends, select_backend
        from bimacosr_app.selftest import INPUT_FILE, _load_input, default_data_dir

        lr = _load_input(default_data_dir() / INPUT_FILE)
        for name in available_backends():
            select_backend(name).upscale(lr, 0, 0, seed=0)
        for fmt in ("png", "jpg", "webp", "tiff"):
            cli_main(["upscale", str(default_data_dir() / INPUT_FILE), "-o", str(tmp / fmt),
                      "--format", fmt, "--scale", "2"])
        cli_main(["info", "--json"])
        cli_main(["--self-test"])

        from PySide6.QtWidgets import QApplication

        from bimacosr_app.gui.app import app_icon
        from bimacosr_app.gui.main_window import MainWindow

        app = QApplication.instance() or QApplication([sys.argv[0]])
        app.setWindowIcon(app_icon())
        window = MainWindow()
        window.show()
        app.processEvents()
        window.close()
    json.dump(sorted(m for m, mod in sys.modules.items() if mod is not None), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
