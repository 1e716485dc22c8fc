"""The main window end to end: drops, the engine thread, the real model, failures, cancel and
retry, pause, resume after quit, a responsive event loop, clean shutdown."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication
from val_photos import val_photos

from bimacosr_app.checkpoint import load_packed
from bimacosr_app.engine import Backend, default_checkpoint_path
from bimacosr_app.gui import MainWindow
from bimacosr_app.gui.dialogs import AboutDialog, ShortcutsDialog
from bimacosr_app.gui.queue_model import Column
from bimacosr_app.gui.settings import Preferences, Settings
from bimacosr_app.jobs import QueueStore, Status

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class SlowBackend(Backend):
    """Bicubic x4 that takes ``delay`` seconds a tile: jobs long enough to cancel, pause and
    watch. It carries the shipped checkpoint (for its hash and required multiple)."""

    name = "slow-test"

    def __init__(self, checkpoint, delay: float) -> None:
        super().__init__(checkpoint, torch.device("cpu"))
        self.delay = delay

    def upscale(self, lr01, top=0, left=0, seed=0):
        time.sleep(self.delay)
        return F.interpolate(lr01, scale_factor=4, mode="bicubic").clamp(0, 1)


@pytest.fixture(scope="module")
def checkpoint():
    return load_packed(default_checkpoint_path())


@pytest.fixture
def photos(tmp_path):
    """Small crops of a real photo: 64x48 ("small.png") and 256x192 ("large.png")."""
    source = val_photos()[0]
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    with Image.open(source) as im:
        im = im.convert("RGB")
        im.crop((600, 400, 664, 448)).save(folder / "small.png")
        im.crop((400, 300, 656, 492)).save(folder / "large.png")
        im.crop((100, 100, 164, 148)).save(folder / "sub" / "deep.png")
    return folder


@pytest.fixture
def make_window(qtbot, tmp_path):
    windows = []

    def make(backend=None, **prefs) -> MainWindow:
        settings = Settings(tmp_path / "config" / "settings.ini")
        settings.set_preferences(Preferences(output_folder=str(tmp_path / "out"), **prefs))
        for name in ("cpu-packed", "reference", "slow-test"):
            settings.set_calibration(name, 1.0)  # no calibration run at start
        factory = None if backend is None else (lambda _name, _device: backend)
        window = MainWindow(settings, QueueStore(tmp_path / "data"), backend_factory=factory)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
        assert not window.engine.thread.isRunning()


def add(qtbot, window, paths, recursive=None):
    with qtbot.waitSignal(window.loaders.scanned, timeout=20000):
        window.add_paths(paths, recursive=recursive)


def run_batch(qtbot, window, timeout=60000):
    with qtbot.waitSignal(window.runner.batchFinished, timeout=timeout) as blocker:
        window.act_start.trigger()
    return blocker.args[0]


def statuses(window):
    return {it.input.name: it.status for it in window.model.items()}


def drop(widget, paths):
    """A real drag: enter over ``widget`` (propagates to whoever accepts), then drop."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    event = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    return event


def test_drop_files_and_folders_anywhere(qtbot, make_window, photos, checkpoint):
    window = make_window(SlowBackend(checkpoint, 0.0))
    with qtbot.waitSignal(window.loaders.scanned, timeout=20000):
        event = drop(window.compare.canvas, [photos / "small.png"])  # onto the compare view
    assert event.isAccepted() and window.overlay.isHidden()
    with qtbot.waitSignal(window.loaders.scanned, timeout=20000):
        drop(window.table.viewport(), [photos])  # a folder onto the queue
    assert [it.input.name for it in window.model.items()] == ["small.png", "large.png"]
    window._apply_preferences(replace(window.prefs, recursive=True))
    with qtbot.waitSignal(window.loaders.scanned, timeout=20000):
        drop(window.details, [photos])
    items = window.model.items()
    assert [it.input.name for it in items] == ["small.png", "large.png", "deep.png"]
    assert items[2].subfolder == "sub"
    qtbot.waitUntil(lambda: all(window.model.thumbnail(it.id) is not None
                                for it in window.model.items()))
    assert items[1].in_size == (256, 192)
    assert window.model.index(1, Column.SIZE).data() == "256×192\n→ 1024×768"
    # The estimate before it runs: 1 s per output megapixel calibrated, x4 = 0.79 MP.
    assert items[1].estimate == pytest.approx(256 * 192 * 16 / 1e6)
    window.table.selectRow(1)
    qtbot.waitUntil(lambda: "MB of memory" in window.details.values["Estimate"].text())
    assert window.details.values["Estimate"].text().startswith("≈ 1 s, ≈ ")


def test_real_upscale_with_the_shipped_model(qtbot, make_window, photos, tmp_path):
    window = make_window()  # the real engine: "auto" backend, shipped model
    stages = []
    window.engine.loading.connect(lambda name: stages.append(window.engine_label.text()))
    add(qtbot, window, [photos / "small.png"])
    summary = run_batch(qtbot, window)
    assert (summary.done, summary.failed) == (1, 0)
    assert stages and stages[0].startswith("Loading model")
    item = window.model.item(0)
    assert item.status is Status.DONE
    assert item.output == tmp_path / "out" / "small_x4.png" and item.output.is_file()
    with Image.open(item.output) as im:
        assert im.size == (256, 192) == item.out_size
    assert item.model == window.model_info.sha256 and len(item.model) == 64
    assert window.engine_label.text().startswith("Model ready")
    # Selected automatically; the compare view and the quality panel fill in.
    qtbot.waitUntil(lambda: window.compare.images is not None, timeout=20000)
    assert window.compare.canvas.overlay is not None  # the slider shows the original
    consistency = window.details.values["Consistency"].text()
    assert consistency.startswith("PSNR-Y") and "SSIM-Y" in consistency
    assert window.details.values["Backend"].text().startswith(window.model_info.backend)
    assert window.act_open_output.isEnabled() and window.open_output_button.isVisibleTo(window)
    qtbot.keyClick(window, Qt.Key.Key_2)  # the "Side by side" shortcut
    assert window.compare.mode().value == "side-by-side"


def test_failed_item_shows_its_error_and_the_batch_goes_on(qtbot, make_window, photos,
                                                          checkpoint):
    bad = photos / "broken.png"
    bad.write_text("this is a text file, not an image")
    window = make_window(SlowBackend(checkpoint, 0.0))
    add(qtbot, window, [photos / "small.png", bad, photos / "large.png"])
    summary = run_batch(qtbot, window)
    assert (summary.done, summary.failed) == (2, 1)
    assert statuses(window) == {"small.png": Status.DONE, "broken.png": Status.FAILED,
                                "large.png": Status.DONE}
    row = window.model.row_of(window.model.items()[1].id)
    error = window.model.index(row, Column.PROGRESS).data()
    assert "broken.png" in error and "text" in error
    window.table.selectRow(row)
    assert window.details.error.isVisibleTo(window) and window.details.error.text() == error
    assert "could not be upscaled" in window.compare.canvas.message


def test_cancel_then_retry(qtbot, make_window, photos, checkpoint, tmp_path):
    window = make_window(SlowBackend(checkpoint, 0.15), tile_budget_mb=64.0)  # 64 px tiles: 12
    add(qtbot, window, [photos / "large.png", photos / "small.png"])
    first, second = window.model.items()
    with qtbot.waitSignal(window.runner.batchFinished, timeout=30000):
        window.act_start.trigger()
        qtbot.waitUntil(lambda: first.progress > 0, timeout=10000)
        assert window.act_cancel.isEnabled()
        window.act_cancel_all.trigger()
    assert (first.status, second.status) == (Status.CANCELLED, Status.CANCELLED)
    assert not (tmp_path / "out" / "large_x4.png").exists()
    assert window.act_retry.isEnabled()
    window.act_retry.trigger()
    assert (first.status, second.status) == (Status.QUEUED, Status.QUEUED)
    summary = run_batch(qtbot, window)
    assert summary.done == 2 and first.output.is_file()


def test_pause_after_current(qtbot, make_window, photos, checkpoint):
    window = make_window(SlowBackend(checkpoint, 0.05))
    add(qtbot, window, [photos / "small.png", photos / "large.png"])
    window.act_start.trigger()
    window.act_pause.setChecked(True)
    qtbot.waitUntil(lambda: not window.runner.running, timeout=20000)
    assert statuses(window) == {"small.png": Status.DONE, "large.png": Status.QUEUED}
    assert window.act_start.isEnabled() and not window.act_pause.isChecked()
    run_batch(qtbot, window)
    assert statuses(window)["large.png"] is Status.DONE


def test_event_loop_keeps_turning_during_a_long_job(qtbot, make_window, photos, checkpoint):
    window = make_window(SlowBackend(checkpoint, 0.2), tile_budget_mb=64.0)  # 12 tiles, ~2.4 s
    add(qtbot, window, [photos / "large.png"])
    ticks = []
    timer = QTimer(interval=20)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    start = time.monotonic()
    run_batch(qtbot, window)
    elapsed = time.monotonic() - start
    timer.stop()
    assert elapsed > 2.0
    gaps = np.diff(ticks)
    assert len(ticks) > 0.5 * elapsed / 0.02 and gaps.max() < 0.5
    assert window.total_bar.isHidden()  # batch over


def test_close_waits_for_the_worker_and_the_queue_resumes(qtbot, make_window, photos,
                                                           checkpoint, tmp_path):
    window = make_window(SlowBackend(checkpoint, 0.3), tile_budget_mb=64.0)
    add(qtbot, window, [photos / "large.png", photos / "small.png"])
    window.act_start.trigger()
    qtbot.waitUntil(lambda: window.model.item(0).progress > 0, timeout=10000)
    assert window.engine.thread.isRunning()
    window.close()
    assert window.engine.thread.isFinished() and not window.engine.thread.isRunning()
    assert not (tmp_path / "out" / "large_x4.png").exists()

    again = make_window(SlowBackend(checkpoint, 0.0))
    assert again.resume_bar.isVisibleTo(again) and "2 photos" in again.resume_bar.label.text()
    with qtbot.waitSignal(again.runner.batchFinished, timeout=30000) as blocker:
        again.resume_bar.resume.click()
    assert blocker.args[0].done == 2 and again.resume_bar.isHidden()
    assert statuses(again) == {"large.png": Status.DONE, "small.png": Status.DONE}


def test_paste_an_image_from_the_clipboard(qtbot, make_window, checkpoint, tmp_path):
    window = make_window(SlowBackend(checkpoint, 0.0))
    image = QImage(40, 30, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.darkCyan)
    QGuiApplication.clipboard().setImage(image)
    with qtbot.waitSignal(window.loaders.scanned, timeout=20000):
        window.act_paste.trigger()
    item = window.model.item(0)
    assert item.input.parent == tmp_path / "data" / "Pasted" and item.input.is_file()


def test_shortcuts_are_listed_and_about_shows_the_model(qtbot, make_window, checkpoint):
    window = make_window(SlowBackend(checkpoint, 0.0))
    dialog = ShortcutsDialog(window._menus, window)
    qtbot.addWidget(dialog)
    rows = {dialog.table.item(r, 1).text(): dialog.table.item(r, 2).text()
            for r in range(dialog.table.rowCount())}
    assert rows["Start"].startswith("Ctrl+Return") and rows["Add files"] == "Ctrl+O"
    assert rows["Show the original while held (flicker mode)"] == "Space"
    assert all(a.toolTip() for a in window.actions())
    about = AboutDialog(QApplication.windowIcon(), window)
    qtbot.addWidget(about)
    about.set_model(checkpoint.content_sha256, "slow-test on cpu")
    assert about.model.text() == checkpoint.content_sha256
