"""Settings file, settings dialog, saved queue, folder scanning and the quality check."""

from __future__ import annotations

import math

import cv2
import numpy as np

from bimacosr_app.gui.queue_model import QueueModel
from bimacosr_app.gui.settings import Preferences, Settings
from bimacosr_app.gui.settings_dialog import SettingsDialog
from bimacosr_app.jobs import QueueItem, QueueStore, Status, analyse, scan_inputs


def test_settings_round_trip_through_a_temp_config_dir(tmp_path, qapp):
    path = tmp_path / "config" / "settings.ini"
    prefs = Preferences(scale=2, output_folder=str(tmp_path / "out"),
                        naming="{stem}-{scale}x.{ext}", format="webp", quality=80,
                        strip_metadata=True, on_exists="skip", backend="reference",
                        device="cpu", tile_budget_mb=512.0, theme="dark", recursive=True)
    settings = Settings(path)
    settings.set_preferences(prefs)
    settings.set_calibration("reference", 12.5)
    assert path.is_file()
    again = Settings(path)
    assert again.preferences() == prefs
    assert again.calibration("reference") == 12.5
    assert again.calibration("cuda") is None


def test_invalid_values_in_the_file_read_as_defaults(tmp_path, qapp):
    path = tmp_path / "settings.ini"
    path.write_text("[preferences]\nscale=5\nformat=gif\nquality=0\nnaming=out.png\n"
                    "theme=neon\ntile_budget_mb=nan\nrecursive=perhaps\n")
    prefs = Settings(path).preferences()
    assert prefs == Preferences()


def test_a_settings_file_of_before_the_schema_keeps_its_values(tmp_path, qapp):
    path = tmp_path / "settings.ini"
    path.write_text("[preferences]\nnaming_template={stem}-big.{ext}\nmemory_mb=0\n")
    prefs = Settings(path).preferences()
    assert prefs.naming == "{stem}-big.{ext}" and prefs.tile_budget_mb is None
    path.write_text("[preferences]\nnaming_template={stem}_x{scale}\nmemory_mb=512\n")
    prefs = Settings(path).preferences()  # a template jobs never took reads as the default
    assert prefs.naming == Preferences().naming and prefs.tile_budget_mb == 512.0
    Settings(path).set_preferences(prefs)
    assert "naming_template" not in path.read_text() and "memory_mb" not in path.read_text()


def test_settings_dialog_edits_every_preference(qtbot, tmp_path):
    prefs = Preferences(scale=3, output_folder=str(tmp_path), format="jpg", quality=70,
                        on_exists="overwrite", theme="light", tile_budget_mb=256.0)
    dialog = SettingsDialog(prefs, ["cpu-packed", "reference"], tmp_path / "settings.ini")
    qtbot.addWidget(dialog)
    assert dialog.preferences() == prefs
    dialog.next_to.setChecked(True)
    dialog.template.setText("{stem}_big.{ext}")
    dialog.strip.setChecked(True)
    assert "IMG_0042_big.jpg" in dialog.example.text()
    changed = dialog.preferences()
    assert changed.output_folder == "" and changed.strip_metadata
    assert changed.naming == "{stem}_big.{ext}"
    dialog.memory.setValue(dialog.memory.minimum())
    assert dialog.memory.text() == "Automatic" and dialog.preferences().tile_budget_mb is None
    for bad in ("{name}.png", "{stem}_x{scale}"):  # unknown field; no .{ext} (jobs refuse it)
        dialog.template.setText(bad)
        assert dialog.example.text().startswith("Invalid name template")
        assert dialog.preferences().naming == Preferences().naming
    # CUDA is not available here: its entry is disabled.
    cuda = dialog.backend.model().item(dialog.backend.findData("cuda"))
    assert not cuda.isEnabled()


def test_queue_store_round_trip_and_resume(tmp_path):
    store = QueueStore(tmp_path)
    done = QueueItem(input=tmp_path / "a.png", status=Status.DONE, in_size=(10, 8),
                     out_size=(40, 32), output=tmp_path / "a_x4.png", seconds=1.5,
                     backend="reference on cpu", model="ab" * 32, tiles="1 tile")
    running = QueueItem(input=tmp_path / "b.png", status=Status.RUNNING, scale=2)
    failed = QueueItem(input=tmp_path / "c.png", status=Status.FAILED, error="broken")
    store.save([done, running, failed])
    loaded = store.unfinished()
    assert [it.input.name for it in loaded] == ["a.png", "b.png", "c.png"]
    assert loaded[0].output == done.output and loaded[0].out_size == (40, 32)
    assert loaded[1].status is Status.QUEUED and loaded[1].scale == 2  # interrupted: again
    assert loaded[2].error == "broken"
    store.save([done, failed])
    assert store.unfinished() == []
    (tmp_path / "queue.json").write_text("{not json")
    assert store.load() == []


def test_queue_model_reorders_and_retries(qapp, tmp_path):
    model = QueueModel()
    items = [QueueItem(input=tmp_path / f"{n}.png") for n in "abc"]
    assert model.add_items(items) == items
    assert model.add_items([QueueItem(input=tmp_path / "a.png")]) == []  # already queued
    model.move_row(2, 0)
    assert [it.input.stem for it in model.items()] == ["c", "a", "b"]
    mime = model.mimeData([model.index(0, 0)])
    model.dropMimeData(mime, model.supportedDropActions(), 3, 0, model.index(-1, -1))
    assert [it.input.stem for it in model.items()] == ["a", "b", "c"]
    model.update_item(items[1].id, status=Status.FAILED, error="x")
    assert model.set_statuses((Status.FAILED,), Status.QUEUED) == 1
    assert items[1].status is Status.QUEUED and items[1].error == ""


def test_an_items_warnings_show_in_the_table_and_the_panel(qapp, tmp_path):
    from PySide6.QtCore import Qt

    from bimacosr_app.gui.quality_panel import QualityPanel

    model = QueueModel()
    (item,) = model.add_items([QueueItem(input=tmp_path / "a.jpg")])
    model.update_item(item.id, status=Status.DONE, seconds=3.0, output=tmp_path / "a_x4.jpg",
                      warnings=["the JPEG ends without its end marker"])
    index = model.index(0, 4)  # the progress column
    assert "1 warning" in model.data(index)
    assert "⚠ the JPEG ends without its end marker" in model.data(
        index, Qt.ItemDataRole.ToolTipRole)
    panel = QualityPanel()
    panel.show_item(item)
    assert not panel.warning.isHidden()
    assert "without its end marker" in panel.warning.text()


def test_folders_are_scanned_recursively_on_request(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.jpg", "a.PNG", "notes.txt", ".hidden.png", "sub/c.webp"):
        (tmp_path / name).write_bytes(b"x")
    flat = scan_inputs([tmp_path], recursive=False)
    assert [f.file.name for f in flat.found] == ["a.PNG", "b.jpg"] and not flat.problems
    assert flat.subfolders_left_out == [tmp_path]  # sub/c.webp
    deep = scan_inputs([tmp_path, tmp_path / "b.jpg", tmp_path / "missing"], recursive=True)
    assert [(f.file.name, f.subfolder) for f in deep.found] == [
        ("a.PNG", ""), ("b.jpg", ""), ("c.webp", "sub")]
    assert deep.problems == [f"'{tmp_path / 'missing'}' does not exist"]
    assert deep.subfolders_left_out == []
    (tmp_path / "sub" / "c.webp").rename(tmp_path / "sub" / ".c.webp")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "d.png").write_bytes(b"x")
    assert scan_inputs([tmp_path], recursive=False
                       ).subfolders_left_out == []  # only hidden ones hold images


def test_scanning_recognises_earlier_outputs_by_content_not_by_name(tmp_path):
    """An output of this app is left out whatever its name; a photo of the user named like
    an output is taken (scan_inputs has no naming template to guess with)."""
    from bimacosr_app import APP_NAME
    from bimacosr_app.image_io import write_image

    pixels = np.zeros((8, 8, 3), np.uint8)
    write_image(tmp_path / "holiday.png", pixels, provenance={"app": APP_NAME})
    write_image(tmp_path / "beach_x4.png", pixels)
    write_image(tmp_path / "beach.png", pixels)
    found = scan_inputs([tmp_path], recursive=False).found
    assert [f.file.name for f in found] == ["beach.png", "beach_x4.png"]


def test_quality_check_flags_colour_shift_and_seams():
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.random((96, 128, 3), dtype=np.float32), (0, 0), 3)
    inp = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    good = cv2.resize(inp, (512, 384), interpolation=cv2.INTER_CUBIC)
    report = analyse(inp, good, period=(256, 256))
    assert report.psnr > 35 and report.ssim > 0.95 and not report.warnings
    assert report.seam_score < 1.5
    shifted = np.clip(good + np.float32([0.03, 0, 0]), 0, 1)
    assert any("Colour shift" in w for w in analyse(inp, shifted, (256, 256)).warnings)
    seamed = good.copy()
    seamed[:, 256:] = np.clip(seamed[:, 256:] + 0.03, 0, 1)
    seam_report = analyse(inp, seamed, (0, 256))
    assert seam_report.seam_score > 2.5
    assert any("seams" in w for w in seam_report.warnings)
    assert math.isnan(analyse(inp, good, None).seam_score)
    row_seamed = good.copy()
    row_seamed[256:] = np.clip(row_seamed[256:] + 0.03, 0, 1)
    assert analyse(inp, row_seamed, (256, 0)).seam_score > 2.5
    assert analyse(inp, row_seamed, (0, 256)).seam_score < 1.5  # only cuts that exist count
