"""Jobs end to end on real photos with the real engine (reference backend, shipped model)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from val_photos import val_photo

from bimacosr_app import __version__
from bimacosr_app.engine import select_backend
from bimacosr_app.image_io import ImageWriteError, probe_image, read_image, read_provenance
from bimacosr_app.jobs import (
    JOURNAL_NAME,
    Batch,
    InputError,
    UpscaleRequest,
    plan_batch,
    run_request,
)

W, H = 64, 48  # LR size of the test photos: one tile, padded to 64 x 64 by the model


@pytest.fixture(scope="module")
def backend():
    return select_backend("reference")


def photo(name: str = "kde_BytheWater.webp", offset: int = 0, width: int = W,
          height: int = H) -> np.ndarray:
    """A real photo's crop, area-downscaled to (height, width, 3) uint8."""
    with Image.open(val_photo(name)) as im:
        im = im.convert("RGB")
    im = im.crop((offset, offset, offset + 4 * width, offset + 4 * height))
    return np.asarray(im.resize((width, height), Image.Resampling.BOX))


def save(path: Path, pixels: np.ndarray, **kw) -> Path:
    Image.fromarray(pixels).save(path, **kw)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parts(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


# -- one request --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,expected", [
    ("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP"), ("tiff", "TIFF"), ("same", "JPEG"),
])
def test_each_output_format(tmp_path, backend, fmt, expected):
    src = save(tmp_path / "in.jpg", photo(), quality=92)
    before = digest(src)
    result = run_request(UpscaleRequest(src, format=fmt), backend)
    assert result.status == "done", result.error
    info = probe_image(result.output)
    assert info.format == expected and (info.width, info.height) == (4 * W, 4 * H)
    assert result.output.name == f"in_x4.{ {'same': 'jpg'}.get(fmt, fmt) }"
    assert result.input_size == (W, H) and result.output_size == (4 * W, 4 * H)
    assert digest(src) == before and not parts(tmp_path)
    prov = read_provenance(result.output)
    assert prov["version"] == __version__ and prov["scale"] == 4
    assert prov["model_sha256"] == backend.checkpoint.content_sha256
    assert prov["backend"] == "reference" and prov["tiling"]["context"] == 64


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_scales(tmp_path, backend, scale):
    src = save(tmp_path / "in.png", photo())
    result = run_request(UpscaleRequest(src, scale=scale, format="png"), backend)
    assert result.status == "done", result.error
    out = read_image(result.output)
    assert (out.width, out.height) == (scale * W, scale * H)
    assert result.output.name == f"in_x{scale}.png"
    # the downscaled x4 result stays close to the input's content (antialiased, no aliasing)
    small = cv2.resize(out.rgb, (W, H), interpolation=cv2.INTER_AREA)
    assert np.abs(small - photo() / 255.0).mean() < 0.1


def test_alpha_png_keeps_alpha(tmp_path, backend):
    rgb = photo()
    alpha = np.zeros((H, W), np.uint8)
    alpha[:, W // 2:] = 255
    src = save(tmp_path / "in.png", np.dstack([rgb, alpha]))
    result = run_request(UpscaleRequest(src, format="png", strip_metadata=True), backend)
    assert result.status == "done", result.error
    out = read_image(result.output)
    assert out.alpha is not None and out.alpha.shape == (4 * H, 4 * W)
    assert out.alpha[:, : 4 * W // 2 - 8].max() == 0 and out.alpha[:, 4 * W // 2 + 8:].min() == 1
    assert read_provenance(result.output) is None  # stripped


@pytest.mark.parametrize("suffix,fmt", [(".png", "same"), (".tiff", "tiff"), (".png", "jpg")])
def test_16_bit_stays_16_bit_where_the_format_can(tmp_path, backend, suffix, fmt):
    rgb16 = photo().astype(np.uint16) * 257
    src = tmp_path / f"in{suffix}"
    assert cv2.imwrite(str(src), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    result = run_request(UpscaleRequest(src, format=fmt), backend)
    assert result.status == "done", result.error
    assert probe_image(result.output).bit_depth == (8 if fmt == "jpg" else 16)


def test_on_exists_policies_and_naming(tmp_path, backend):
    src = save(tmp_path / "in.png", photo())
    existing = tmp_path / "in_x4.png"
    existing.write_bytes(b"keep me")

    skipped = run_request(UpscaleRequest(src, on_exists="skip"), backend)
    assert skipped.status == "skipped" and existing.read_bytes() == b"keep me"

    renamed = run_request(UpscaleRequest(src, on_exists="rename"), backend)
    assert renamed.status == "done" and renamed.output == tmp_path / "in_x4 (1).png"
    assert existing.read_bytes() == b"keep me"

    replaced = run_request(UpscaleRequest(src, on_exists="overwrite"), backend)
    assert replaced.status == "done" and replaced.output == existing
    assert probe_image(existing).width == 4 * W

    out = tmp_path / "out"
    named = run_request(UpscaleRequest(src, output=out, naming="{stem}-big{scale}.{ext}",
                                       format="webp"), backend)
    assert named.status == "done" and named.output == out / "in-big4.webp"

    same = run_request(UpscaleRequest(src, output=src, on_exists="overwrite"), backend)
    assert same.status == "failed" and "never overwritten" in same.error
    for bad in ("{stem}", "{name}.{ext}", "sub/{stem}.{ext}"):
        with pytest.raises(ValueError):
            UpscaleRequest(src, naming=bad)


def test_progress_and_cancellation_leave_no_partial_file(tmp_path, backend):
    src = save(tmp_path / "in.png", photo(width=W + 8))
    before = digest(src)
    seen = []
    request = UpscaleRequest(src, tile_budget_mb=1)  # 64-pixel tiles: 2 of them
    result = run_request(request, backend, progress=seen.append)
    assert result.status == "done"
    assert [p.tiles_done for p in seen[:-1]] == [1, 2] and seen[-1].fraction == 1.0
    assert seen[0].eta_s is not None and seen[0].eta_s > 0
    result.output.unlink()

    cancel = threading.Event()
    result = run_request(request, backend, progress=lambda p: cancel.set(), cancel=cancel)
    assert result.status == "cancelled" and result.output is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]  # nothing else, no .part
    assert digest(src) == before


# -- bad inputs in a batch -----------------------------------------------------------------------


def _bomb_png(path: Path) -> Path:
    """A valid PNG header claiming 100000 x 100000 pixels, with a token IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


def test_bad_files_fail_alone_and_the_batch_completes(tmp_path, backend):
    folder = tmp_path / "in"
    folder.mkdir()
    save(folder / "a_good.png", photo())
    # cut in its pixel data: 96 x 80 px (a smaller one's half can end inside the header)
    jpeg = save(folder / "b_truncated.jpg", photo(offset=200, width=96, height=80), quality=90)
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    (folder / "c_empty.png").write_bytes(b"")
    (folder / "d_text.png").write_text("this is not an image\n")
    _bomb_png(folder / "e_bomb.png")
    save(folder / "f_good.jpg", photo(offset=400), quality=90)

    batch = plan_batch([folder], tmp_path / "out", format="png")
    results = batch.run(backend)
    by_name = {r.input.name: r for r in results}
    assert [r.input.name for r in results] == sorted(by_name)
    assert by_name["a_good.png"].status == by_name["f_good.jpg"].status == "done"
    expected = {
        "b_truncated.jpg": "truncated or damaged",
        "c_empty.png": "empty (0 bytes)",
        "d_text.png": "contains text, not image data",
        "e_bomb.png": "megapixels",
    }
    for name, message in expected.items():
        assert by_name[name].status == "failed"
        assert message in by_name[name].error and name in by_name[name].error
    journal = json.loads((tmp_path / "out" / JOURNAL_NAME).read_text())
    states = {Path(e["input"]).name: e["state"] for e in journal["items"]}
    assert states == {"a_good.png": "done", "f_good.jpg": "done", **dict.fromkeys(expected,
                                                                                   "failed")}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        JOURNAL_NAME, "a_good_x4.png", "f_good_x4.png"]


def test_unwritable_output_fails_that_file_only(tmp_path, backend, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        save(folder / f"p{i}.png", photo(offset=150 * i))
    out = tmp_path / "out"
    if os.geteuid() != 0:  # a real read-only folder (root can write anyway)
        out.mkdir()
        (out / "p1_x4.png").mkdir()  # the one target that cannot be written
    else:
        import bimacosr_app.jobs.run as run_module

        real = run_module.write_image

        def flaky(path, *args, **kwargs):
            if Path(path).name == "p1_x4.png":
                raise ImageWriteError(path, "the disk is full (no space left on the device)")
            return real(path, *args, **kwargs)

        monkeypatch.setattr(run_module, "write_image", flaky)
    results = plan_batch([folder], out).run(backend)
    assert [r.status for r in results] == ["done", "failed", "done"]
    assert results[1].error.startswith("Cannot write") and "p1_x4.png" in results[1].error
    assert not parts(tmp_path)


def test_read_only_folder_message(tmp_path, backend):
    if os.geteuid() == 0:
        pytest.skip("root can write into read-only folders")
    src = save(tmp_path / "in.png", photo())
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        result = run_request(UpscaleRequest(src, output=out), backend)
    finally:
        out.chmod(0o755)
    assert result.status == "failed" and "not writable" in result.error


# -- batch planning and resuming -----------------------------------------------------------------


def test_scan_mirrors_tree_and_ignores_our_outputs(tmp_path):
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    for p in ("a.png", "sub/b.jpg", "sub/deeper/c.png"):
        save(root / p, photo())
    (root / "a_x4.png").write_bytes(b"an earlier output")  # named like our output of a.png
    (root / "a_x4 (1).png").write_bytes(b"an earlier output")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"")

    flat = plan_batch([root])
    assert [r.input.name for r in flat.requests] == ["a.png"]
    assert flat.journal_path == root / JOURNAL_NAME

    deep = plan_batch([root], tmp_path / "out", recursive=True)
    got = {r.input.relative_to(root).as_posix(): r.output for r in deep.requests}
    assert got == {
        "a.png": tmp_path / "out",
        "sub/b.jpg": tmp_path / "out" / "sub",
        "sub/deeper/c.png": tmp_path / "out" / "sub" / "deeper",
    }
    with pytest.raises(InputError, match="does not exist"):
        plan_batch([tmp_path / "missing.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images found"):
        plan_batch([tmp_path / "empty"])


def test_resume_marks_finished_outputs_done_and_removes_stale_parts(tmp_path, backend):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        save(folder / f"p{i}.png", photo(offset=150 * i))
    out = tmp_path / "out"
    out.mkdir()
    (out / "p0_x4.png").write_bytes(b"was here before the batch")

    class Interrupt:  # the "power cut": stops the batch while the second image is running
        def __init__(self):
            self.calls = 0

        def __getattr__(self, name):
            return getattr(backend, name)

        def upscale(self, *args, **kwargs):
            self.calls += 1
            if self.calls > 1:
                raise KeyboardInterrupt
            return backend.upscale(*args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        plan_batch([folder], out).run(Interrupt())
    journal = json.loads((out / JOURNAL_NAME).read_text())
    items = {Path(e["input"]).name: e for e in journal["items"]}
    assert items["p0.png"]["state"] == "done"
    assert items["p0.png"]["output"].endswith("p0_x4 (1).png")  # renamed at planning
    assert items["p1.png"]["state"] == items["p2.png"]["state"] == "pending"
    # p1 finished writing just before the cut (its journal entry still says pending), and a
    # killed write of p2 left its temporary file
    p1_out = Path(items["p1.png"]["output"])
    p1_out.write_bytes(b"complete output of the interrupted run")
    stale = out / ".p2_x4.png.0123abcd.part"
    stale.write_bytes(b"partial")

    results = plan_batch([folder], out).run(backend)
    assert [r.status for r in results] == ["skipped", "skipped", "done"]
    assert p1_out.read_bytes() == b"complete output of the interrupted run"  # not redone
    assert not stale.exists() and not parts(tmp_path)
    journal = json.loads((out / JOURNAL_NAME).read_text())
    assert {e["state"] for e in journal["items"]} == {"done"}
    assert sorted(p.name for p in out.iterdir()) == [
        JOURNAL_NAME, "p0_x4 (1).png", "p0_x4.png", "p1_x4.png", "p2_x4.png"]
    assert (out / "p0_x4.png").read_bytes() == b"was here before the batch"

    # other settings: a new journal, and the batch runs again under its on_exists policy
    again = plan_batch([folder], out, on_exists="skip", quality=80).run(backend)
    assert [r.status for r in again] == ["skipped"] * 3


def test_batch_cancel_stops_after_current_item(tmp_path, backend):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        save(folder / f"p{i}.png", photo(offset=150 * i))
    cancel = threading.Event()
    batch = Batch(plan_batch([folder], tmp_path / "out").requests, tmp_path / "out" / "j.json")
    results = batch.run(backend, progress=lambda *a: cancel.set(), cancel=cancel)
    assert [r.status for r in results] == ["cancelled"]
    journal = json.loads((tmp_path / "out" / "j.json").read_text())
    assert [e["state"] for e in journal["items"]] == ["pending", "pending"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["j.json"]


def test_batch_runs_as_the_windows_queue_with_total_progress_and_eta(tmp_path, backend):
    """The batch's items run through the window's queue model: its total progress weighs
    them by input pixels, and its ETA appears once the first image has measured the speed."""
    folder = tmp_path / "in"
    folder.mkdir()
    save(folder / "a_big.png", photo(width=64, height=48))
    save(folder / "b_small.png", photo(offset=150, width=32, height=24))
    save(folder / "c_big.png", photo(offset=300, width=64, height=48))
    events: list[tuple] = []  # ("total", fraction, eta) and ("result", name), in order
    results = plan_batch([folder], tmp_path / "out").run(
        backend, on_result=lambda i, n, r: events.append(("result", r.input.name)),
        total_progress=lambda fraction, eta: events.append(("total", fraction, eta)))

    assert [r.status for r in results] == ["done"] * 3
    assert events[-1] == ("total", -1.0, None)  # the runner is idle again
    fractions = [e[1] for e in events[:-1] if e[0] == "total"]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    first_done = events.index(("result", "a_big.png"))
    # a_big is 3072 of 6912 input pixels: its end is 4/9 of the batch, not a third
    assert events[first_done - 1][1] == pytest.approx(4 / 9)
    assert all(e[2] is None for e in events[:first_done] if e[0] == "total")
    assert all(e[2] > 0 for e in events[first_done + 1:-1] if e[0] == "total"
               and e[1] < 1.0)
