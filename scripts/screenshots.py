"""Drive the real window through its main states and save screenshots to docs/screenshots/.

    python scripts/screenshots.py [--out DIR] [--theme light|dark]

Runs offscreen (no display needed) with settings and queue in a temporary folder, so the
user's own are untouched. Inputs are crops of photos from the validation set
(``training.data.default_data_dir("val")``), upscaled by the shipped model.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402
from PySide6.QtCore import QEventLoop, QPointF, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from bimacosr_app.gui.app import app_icon  # noqa: E402
from bimacosr_app.gui.compare_view import CompareMode  # noqa: E402
from bimacosr_app.gui.main_window import MainWindow  # noqa: E402
from bimacosr_app.gui.settings import APP_NAME, ORG_NAME, Preferences, Settings  # noqa: E402
from bimacosr_app.gui.settings_dialog import SettingsDialog  # noqa: E402
from bimacosr_app.gui.theme import apply_theme  # noqa: E402
from bimacosr_app.jobs import QueueStore, Status  # noqa: E402
from bimacosr_app.training.data import default_data_dir  # noqa: E402

#: (photo index in the sorted validation folder, crop box) of the queued inputs.
CROPS = ((4, (300, 150, 620, 390)), (0, (400, 300, 880, 660)), (9, (500, 300, 820, 540)))


def wait(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_until(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not reach the expected state in time")
        wait(50)


def save(widget: QWidget, out: Path, name: str) -> None:
    wait(150)
    path = out / f"{name}.png"
    widget.grab().save(str(path))
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def make_inputs(folder: Path) -> list[Path]:
    photos = sorted(default_data_dir("val").iterdir())
    paths = []
    for index, box in CROPS:
        with Image.open(photos[index % len(photos)]) as im:
            path = folder / f"{photos[index % len(photos)].stem}.png"
            im.convert("RGB").crop(box).save(path)
            paths.append(path)
    broken = folder / "scan-0042.jpg"
    broken.write_text("not really a JPEG")
    paths.insert(2, broken)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--theme", choices=("light", "dark"), default="light")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    QApplication.setApplicationName(APP_NAME)
    QApplication.setOrganizationName(ORG_NAME)
    app = QApplication([sys.argv[0]])
    app.setWindowIcon(app_icon())
    apply_theme(app, args.theme)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        settings = Settings(tmp / "settings.ini")
        # A 512 MB tile budget splits the 480x360 crop into 6 tiles: progress to show.
        settings.set_preferences(Preferences(output_folder=str(tmp / "out"), tile_budget_mb=512,
                                             theme=args.theme))
        window = MainWindow(settings, QueueStore(tmp / "data"))
        available: list[str] = []
        window.engine.initialized.connect(lambda names, *_: available.extend(names))
        window.resize(1280, 800)
        window.show()
        wait_until(lambda: bool(available), 60)
        save(window, args.out, "empty")

        window.add_paths(make_inputs(tmp / "in"))
        wait_until(lambda: window.model.rowCount() == 4, 30)
        wait_until(lambda: all(window.model.thumbnail(it.id) or it.status is Status.FAILED
                               for it in window.model.items()), 30)
        window.start()
        second = window.model.item(1)
        wait_until(lambda: second.status is Status.RUNNING and second.progress > 0.25, 300)
        save(window, args.out, "queue-running")
        wait_until(lambda: not window.runner.running, 600)

        window.table.selectRow(0)
        wait_until(lambda: window.compare.images is not None, 60)
        window.compare.set_mode(CompareMode.SLIDER)
        size = window.compare.state.image_size
        detail = QPointF(size.width() * 0.55, size.height() * 0.45)
        window.compare.state.zoom_to(4.0, detail, QPointF(0, 0))  # 400 %, centred there
        save(window, args.out, "compare-slider-400")
        window.compare.set_mode(CompareMode.SIDE_BY_SIDE)
        window.compare.set_interpolation("bicubic")
        window.compare.set_zoom(2.0)
        save(window, args.out, "compare-side-by-side")
        window.compare.set_mode(CompareMode.DIFFERENCE)
        window.compare.fit()
        save(window, args.out, "compare-difference")

        dialog = SettingsDialog(window.prefs, available, settings.path, window)
        dialog.show()
        save(dialog, args.out, "settings")
        dialog.close()
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
