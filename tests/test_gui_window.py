"""The main window end to end: drops, the engine thread, the real model, failures, cancel and
retry, pause, resume after quit, a responsive event loop, clean shutdown; estimates refined by
finished jobs, photos that cannot be read, where the results go, and the first run."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QFileDialog, QToolBar
from val_photos import val_photos

from bimacosr_app.checkpoint import load_packed
from bimacosr_app.engine import Backend, default_checkpoint_path
from bimacosr_app.gui import MainWindow
from bimacosr_app.gui.dialogs import AboutDialog, ShortcutsDialog
from bimacosr_app.gui.queue_model import Column
from bimacosr_app.gui.settings import Preferences, Settings
from bimacosr_app.jobs import QueueItem, QueueStore, Status, engine_facts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class SlowBackend(Backend):
    """Bicubic x4 that takes ``delay`` seconds a tile: jobs long enough to cancel, pause and
    watch. It carries the shipped checkpoint (for its hash and required multiple)."""

    name = "slow-test"

    def __init__(self, checkpoint, delay: float) -> None:
        super().__init__(checkpoint, torch.device("cpu"))
        self.delay = delay

    def upscale(self, lr01, top=0, left=0, seed=0):  # a NumPy tile or a torch one
        time.sleep(self.delay)
        return F.interpolate(torch.as_tensor(lr01), scale_factor=4, mode="bicubic").clamp(0, 1)


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
        settings.set_preferences(Preferences(**{"output_folder": str(tmp_path / "out"),
                                                **prefs}))
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
    window.apply_preferences(replace(window.prefs, recursive=True))
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


def test_a_failed_job_shows_its_whole_error_and_the_batch_goes_on(qtbot, make_window, photos,
                                                                  checkpoint, tmp_path):
    long_name = "a-folder-name-long-enough-that-its-path-cannot-fit-on-one-line-of-the-panel-" * 2
    (photos / "sub").rename(photos / long_name)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / long_name).write_text("a file where the output folder must go")
    window = make_window(SlowBackend(checkpoint, 0.0), recursive=True)
    add(qtbot, window, [photos])
    summary = run_batch(qtbot, window)
    assert (summary.done, summary.failed) == (2, 1)
    assert statuses(window) == {"small.png": Status.DONE, "large.png": Status.DONE,
                                "deep.png": Status.FAILED}
    row = window.model.row_of(window.model.items()[2].id)
    message = window.model.item(row).error
    assert long_name in message and window.model.index(row, Column.PROGRESS).data() == message
    window.table.selectRow(row)
    error = window.details.error
    assert error.isVisibleTo(window) and error.toPlainText() == message
    # All of it in view: wrapped inside the panel's width (the path has no space to wrap at),
    # as tall as its lines.
    qtbot.waitUntil(lambda: error.document().size().height() <= error.viewport().height())
    assert error.document().textWidth() <= error.viewport().width()
    assert error.document().size().height() > 2 * error.fontMetrics().lineSpacing()
    assert "could not be upscaled" in window.compare.canvas.message


def test_a_photo_that_cannot_be_read_fails_when_added(qtbot, make_window, photos, checkpoint):
    bad = photos / "broken.png"
    bad.write_text("this is a text file, not an image")
    window = make_window(SlowBackend(checkpoint, 0.0))
    add(qtbot, window, [photos / "small.png", bad])
    broken = window.model.item(1)
    qtbot.waitUntil(lambda: broken.status is Status.FAILED)  # before any Start
    assert not window.runner.running
    assert "broken.png" in broken.error and "text" in broken.error
    assert window.model.index(1, Column.PROGRESS).data() == broken.error
    assert window.model.index(1, Column.SIZE).data() == "?"
    summary = run_batch(qtbot, window)
    assert (summary.done, summary.failed) == (1, 0)
    assert statuses(window) == {"small.png": Status.DONE, "broken.png": Status.FAILED}
    window.act_retry.trigger()  # read again: still text, so failed again at once
    assert broken.status is Status.QUEUED and broken.error == ""
    qtbot.waitUntil(lambda: broken.status is Status.FAILED)
    assert "text" in broken.error and not window.runner.running


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
        again.saved_queue.resume_button.click()
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
    assert rows["Upscale"].startswith("Ctrl+Return") and rows["Add files"] == "Ctrl+O"
    assert rows["Show the original while held (flicker mode)"] == "Space"
    assert all(a.toolTip() for a in window.actions())
    about = AboutDialog(QApplication.windowIcon(), window)
    qtbot.addWidget(about)
    about.set_model(checkpoint.content_sha256, "slow-test on cpu")
    assert about.model.text() == checkpoint.content_sha256


def test_keys_go_to_the_queue_at_start_not_to_the_scale_box(qtbot, make_window, photos,
                                                           checkpoint):
    """Home and the arrows move in the queue; they once reached the toolbar's scale box first,
    where Home silently set the scale to 2x."""
    window = make_window(SlowBackend(checkpoint, 0.0), scale=4)
    add(qtbot, window, [photos / "small.png", photos / "large.png"])
    window.activateWindow()
    qtbot.waitActive(window)
    assert QApplication.focusWidget() is window.table
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_End)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Home)
    assert window.commands.scale_box.currentData() == 4 and window.prefs.scale == 4
    assert window.table.selected_rows() == [0]


def test_estimates_follow_the_finished_jobs_per_backend_and_tile_size(qtbot, make_window,
                                                                      photos, checkpoint):
    backend = SlowBackend(checkpoint, 0.0)
    backend.name = engine_facts().auto  # the backend "auto" stands for, as the window sees it
    window = make_window(backend)  # calibrated: 1 s per megapixel
    add(qtbot, window, [photos / "large.png"])
    run_batch(qtbot, window)
    large = window.model.item(0)
    measured = large.seconds / (256 * 192 * 16 / 1e6)  # seconds per model output megapixel
    small_megapixels = 64 * 48 * 16 / 1e6
    add(qtbot, window, [photos / "small.png"])
    small = window.model.item(1)
    qtbot.waitUntil(lambda: small.estimate is not None)
    assert small.estimate == pytest.approx(measured * small_megapixels)
    assert small.estimate != pytest.approx(1.0 * small_megapixels)
    window.close()
    # Kept in the settings file, for this tile size only: a 64 MB tile budget gives smaller
    # tiles, not measured yet, so their estimate is the calibration's.
    again = make_window(backend)
    add(qtbot, again, [photos / "small.png"])
    qtbot.waitUntil(lambda: again.model.item(0).estimate is not None)
    assert again.model.item(0).estimate == pytest.approx(measured * small_megapixels)
    again.apply_preferences(replace(again.prefs, tile_budget_mb=64.0))
    assert again.model.item(0).estimate == pytest.approx(1.0 * small_megapixels)


def test_the_batch_eta_shows_while_any_photo_has_an_estimate(qtbot, make_window, photos,
                                                             checkpoint):
    window = make_window(SlowBackend(checkpoint, 0.0))
    sized = QueueItem(photos / "large.png", in_size=(256, 192))
    unsized = QueueItem(photos / "small.png")  # its size not read yet: no estimate
    window.model.add_items([sized, unsized])
    qtbot.waitUntil(lambda: sized.estimate is not None)  # once the engine said what it runs
    assert unsized.estimate is None
    with qtbot.waitSignal(window.runner.batchFinished, timeout=60000), \
            qtbot.waitSignal(window.runner.totalProgress) as first:
        window.act_start.trigger()
    assert first.args[1] == pytest.approx(sized.estimate)
    assert statuses(window) == {"large.png": Status.DONE, "small.png": Status.DONE}


def test_the_window_shows_where_results_go_and_changes_it(qtbot, make_window, photos,
                                                         checkpoint, tmp_path, monkeypatch):
    window = make_window(SlowBackend(checkpoint, 0.0), output_folder=str(photos))
    bar = window.start_bar
    assert bar.folder_button.toolTip() == f"The results go to {photos}"
    assert not bar.warning.isVisibleTo(window)  # nothing queued yet
    add(qtbot, window, [photos / "small.png"])
    assert bar.warning.isVisibleTo(window)  # the results would land among the photos
    chosen = tmp_path / "chosen"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: str(chosen))
    bar.choose_folder.trigger()
    assert window.prefs.output_folder == str(chosen) and not bar.warning.isVisibleTo(window)
    assert bar.folder_button.toolTip() == f"The results go to {chosen}"
    assert Settings(window.settings.path).preferences().output_folder == str(chosen)
    run_batch(qtbot, window)
    assert window.model.item(0).output == chosen / "small_x4.png"
    bar.next_to_originals.trigger()
    assert window.prefs.output_folder == "" and bar.warning.isVisibleTo(window)
    assert bar.folder_button.text() == "Next to the originals"


def test_the_first_run_shows_what_to_do_next(qtbot, make_window, photos, checkpoint,
                                             monkeypatch):
    window = make_window(SlowBackend(checkpoint, 0.0))
    toolbar = window.findChild(QToolBar)

    def greyed_out():
        return [toolbar.widgetForAction(a) for a in toolbar.actions()
                if a.isVisible() and not toolbar.widgetForAction(a).isEnabled()]

    def shown(action):  # the toolbar entry showing ``action`` is visible
        return any(a.isVisible() and getattr(toolbar.widgetForAction(a), "defaultAction",
                                             lambda: None)() is action
                   for a in toolbar.actions())

    assert greyed_out() == []
    button = window.start_bar.upscale_button
    assert button.isEnabled() and button.text() == "Add photos…"
    bad = photos / "broken.png"
    bad.write_text("not an image")
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        lambda *args: ([str(photos / "small.png"), str(bad)], ""))
    with qtbot.waitSignal(window.loaders.scanned, timeout=20000):
        button.click()  # the big button adds photos while none is queued
    qtbot.waitUntil(lambda: window.model.item(1).status is Status.FAILED)
    assert button.text() == "Upscale 1 photo" and shown(window.act_retry)
    assert greyed_out() == [] and not shown(window.act_cancel)
    with qtbot.waitSignal(window.runner.batchFinished, timeout=60000):
        button.click()
        assert button.text() == "Upscaling…" and shown(window.act_cancel)
    assert window.model.item(0).status is Status.DONE and button.text() == "Add photos…"


def test_subfolders_left_out_get_a_hint(qtbot, make_window, photos, checkpoint):
    window = make_window(SlowBackend(checkpoint, 0.0))
    add(qtbot, window, [photos])  # without subfolders (the default)
    assert [it.input.name for it in window.model.items()] == ["large.png", "small.png"]
    assert window.subfolder_bar.isVisibleTo(window)
    assert f"'{photos.name}' has photos in subfolders" in window.subfolder_bar.label.text()
    with qtbot.waitSignal(window.loaders.scanned, timeout=20000):
        window.inputs.add_subfolders_button.click()
    assert [(it.input.name, it.subfolder) for it in window.model.items()] == [
        ("large.png", ""), ("small.png", ""), ("deep.png", "sub")]
    assert window.subfolder_bar.isHidden() and not window.prefs.recursive
    window.model.remove_rows([0, 1, 2])
    add(qtbot, window, [photos])
    with qtbot.waitSignal(window.loaders.scanned, timeout=20000):
        window.inputs.always_subfolders_button.click()
    assert len(window.model.items()) == 3 and window.prefs.recursive
    assert Settings(window.settings.path).preferences().recursive
    add(qtbot, window, [photos])  # with subfolders now: nothing left out, no hint
    assert window.subfolder_bar.isHidden()


def test_open_output_folder_says_so_when_no_file_manager_opens(qtbot, make_window, checkpoint,
                                                              tmp_path, monkeypatch):
    window = make_window(SlowBackend(checkpoint, 0.0))
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or False)
    window.act_open_output.trigger()
    folder = str(tmp_path / "out")
    assert opened == [QUrl.fromLocalFile(folder)]
    assert "No file manager could be opened" in window.statusBar().currentMessage()
    assert folder in window.statusBar().currentMessage()
    assert QGuiApplication.clipboard().text() == folder
