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
    FolderInUseError,
    InputError,
    UpscaleRequest,
    plan_batch,
    run_request,
)
from bimacosr_app.jobs.journal import LOCK_NAME, FolderLock, Journal

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


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def entries(folder: Path) -> dict[str, dict]:
    """The latest journal entry of each input in ``folder``'s journal, by input file name."""
    return {Path(key).name: entry
            for key, entry in Journal(folder / JOURNAL_NAME).load().items()}


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


@pytest.mark.parametrize("suffix,mode,fmt,expected_mode", [
    (".png", "L", "same", "L"), (".png", "I;16", "same", "I;16"), (".jpg", "L", "same", "L"),
    (".png", "L", "tiff", "L"), (".png", "I;16", "tiff", "I;16"),
])
def test_grey_inputs_give_grey_outputs(tmp_path, backend, suffix, mode, fmt, expected_mode):
    """A grey photo (8 or 16 bit) comes out as one grey channel, not as RGB with colour noise."""
    grey8 = np.asarray(Image.fromarray(photo()).convert("L"))
    grey = grey8.astype(np.uint16) * 257 if mode == "I;16" else grey8
    src = save(tmp_path / f"in{suffix}", grey, **({"quality": 95} if suffix == ".jpg" else {}))
    result = run_request(UpscaleRequest(src, format=fmt), backend)
    assert result.status == "done", result.error
    with Image.open(result.output) as out:
        assert out.mode == expected_mode and out.size == (4 * W, 4 * H)
        pixels = np.asarray(out, dtype=np.float32) / (65535 if mode == "I;16" else 255)
    small = cv2.resize(pixels, (W, H), interpolation=cv2.INTER_AREA)
    assert np.abs(small - grey8 / 255.0).mean() < 0.03  # the photo, enlarged


@pytest.mark.parametrize("length", [247, 255])
def test_longest_legal_output_names_are_written(tmp_path, backend, length):
    stem = "p" * (length - len("_x4.png"))  # the input's own name is 3 bytes shorter
    src = save(tmp_path / f"{stem}.png", photo())
    result = run_request(UpscaleRequest(src), backend)
    assert result.status == "done", result.error
    assert len(result.output.name.encode()) == length and not parts(tmp_path)


def test_jpeg_without_end_marker_is_upscaled_with_a_warning(tmp_path, backend):
    src = save(tmp_path / "cut.jpg", photo(), quality=90)
    data = src.read_bytes()
    assert data.endswith(b"\xff\xd9")
    src.write_bytes(data[:-2])  # only the end marker missing
    result = run_request(UpscaleRequest(src, format="png"), backend)
    assert result.status == "done", result.error
    assert result.warnings == ["'cut.jpg' lacks the JPEG end marker; all of its image data was "
                               "there and was used"]
    assert result.to_dict()["warnings"] == result.warnings


def test_on_exists_policies_and_naming(tmp_path, backend):
    src = save(tmp_path / "in.png", photo())
    existing = tmp_path / "in_x4.png"
    existing.write_bytes(b"keep me")

    skipped = run_request(UpscaleRequest(src, on_exists="skip"), backend)
    assert skipped.status == "skipped" and existing.read_bytes() == b"keep me"

    renamed = run_request(UpscaleRequest(src, on_exists="rename"), backend)
    assert renamed.status == "done" and renamed.output == tmp_path / "in_x4 (1).png"
    assert existing.read_bytes() == b"keep me"

    # "overwrite" replaces only this app's outputs: "keep me" is kept, and the renamed output
    # of the run before (its provenance record says whose it is) is replaced instead
    kept = run_request(UpscaleRequest(src, on_exists="overwrite"), backend)
    assert kept.status == "done" and kept.output == renamed.output
    assert existing.read_bytes() == b"keep me"
    assert kept.warnings == ["kept 'in_x4.png', a file this app did not write, and wrote "
                             "'in_x4 (1).png' instead (only this app's own outputs, or the file "
                             "named as the output, are overwritten)"]
    assert names(tmp_path) == ["in.png", "in_x4 (1).png", "in_x4.png"]
    # its own earlier output, known by the provenance record in it, is replaced
    out = tmp_path / "out"
    first = run_request(UpscaleRequest(src, output=out), backend)
    replaced = run_request(UpscaleRequest(src, output=out, on_exists="overwrite", quality=70),
                           backend)
    assert replaced.status == "done" and replaced.output == first.output == out / "in_x4.png"
    assert replaced.warnings == [] and names(out) == ["in_x4.png"]

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


def test_same_pixels_whatever_the_free_memory(tmp_path, monkeypatch):
    """Issue 16, item 12: one command gives the same pixels on machines with different free
    RAM. Before, the default tile followed it: 64-pixel tiles with 200 MB available, one tile
    with 64 GB, and the 1-bit model's output differs between tilings."""
    from bimacosr_app.native import load_kernels
    from bimacosr_app.tiling import DEFAULT_TILE, memory

    if load_kernels() is None:
        pytest.skip("the native kernels are not built")
    packed = select_backend("cpu-packed")
    src = save(tmp_path / "p.png", photo(width=192, height=128))
    runs = []
    for free_mb in (64 << 10, 200):
        monkeypatch.setattr(memory, "available_ram_bytes", lambda mb=free_mb: mb << 20)
        result = run_request(UpscaleRequest(src, output=tmp_path / f"{free_mb}.png"), packed)
        assert result.status == "done", result.error
        runs.append((read_image(result.output).rgb, result.details["tiling"], result.warnings))
    (roomy, tiling, warnings), (low, tiling_low, warnings_low) = runs
    assert tiling == tiling_low and tiling["tile"] == DEFAULT_TILE and tiling["tiles"] == 1
    np.testing.assert_array_equal(roomy, low)
    assert warnings == [] and any("200 MB is free" in w for w in warnings_low)


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
    states = {name: entry["state"] for name, entry in entries(tmp_path / "out").items()}
    assert states == {"a_good.png": "done", "f_good.jpg": "done", **dict.fromkeys(expected,
                                                                                   "failed")}
    assert names(tmp_path / "out") == [JOURNAL_NAME, "a_good_x4.png", "f_good_x4.png"]


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


def test_scan_mirrors_tree(tmp_path):
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    for p in ("a.png", "sub/b.jpg", "sub/deeper/c.png"):
        save(root / p, photo())
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
    items = entries(out)
    assert items["p0.png"]["state"] == "done"
    assert items["p0.png"]["output"].endswith("p0_x4 (1).png")  # renamed at planning
    assert items["p1.png"]["state"] == items["p2.png"]["state"] == "pending"
    # p1 finished writing just before the cut (its journal entry still says pending), and a
    # killed write of p2 left its temporary file
    p1_out = Path(items["p1.png"]["output"])
    p1_out.write_bytes(b"complete output of the interrupted run")
    name_digest = hashlib.sha256(b"p2_x4.png").hexdigest()[:8]
    stale = out / f".bimacosr-{name_digest}-0123abcd.part"
    stale.write_bytes(b"partial")
    assert not (out / LOCK_NAME).exists()  # released on the way out

    results = plan_batch([folder], out).run(backend)
    assert [r.status for r in results] == ["skipped", "skipped", "done"]
    assert p1_out.read_bytes() == b"complete output of the interrupted run"  # not redone
    assert not stale.exists() and not parts(tmp_path)
    assert {e["state"] for e in entries(out).values()} == {"done"}
    assert names(out) == [JOURNAL_NAME, "p0_x4 (1).png", "p0_x4.png", "p1_x4.png", "p2_x4.png"]
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
    journal = Journal(tmp_path / "out" / "j.json").load()
    assert [e["state"] for e in journal.values()] == ["pending", "pending"]
    assert names(tmp_path / "out") == ["j.json"]


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


# -- nothing lost: inputs, other files, changed inputs, a second run ----------------------------


@pytest.mark.parametrize("given", ["folder", "files"])
def test_no_input_is_ever_overwritten_nor_read_back(tmp_path, backend, given):
    """The user's a_x4.png, named like the output of a.png, is an input like any other: never
    written over (even with "overwrite"), and its own output is x4 of it, not a x16 copy."""
    folder = tmp_path / "in"
    folder.mkdir()
    save(folder / "a.png", photo())
    mine = save(folder / "a_x4.png", photo(offset=300))
    before = digest(mine)
    inputs = [folder] if given == "folder" else [folder / "a.png", mine]
    results = {r.input.name: r for r in plan_batch(inputs, on_exists="overwrite").run(backend)}
    assert sorted(results) == ["a.png", "a_x4.png"]
    assert digest(mine) == before
    a, a4 = results["a.png"], results["a_x4.png"]
    assert a.status == a4.status == "done"
    assert a.output == folder / "a_x4 (1).png"
    assert a.warnings[0].startswith("kept 'a_x4.png', an input image, and wrote 'a_x4 (1).png'")
    assert a4.output == folder / "a_x4_x4.png" and probe_image(a4.output).width == 4 * W


def test_overwrite_replaces_only_outputs_this_app_wrote(tmp_path, backend):
    src = save(tmp_path / "in.png", photo())
    out = tmp_path / "out"
    out.mkdir()
    foreign = save(out / "in_x4.png", photo(offset=300))  # the user's, no provenance
    before = digest(foreign)
    first = plan_batch([src], out, strip_metadata=True, on_exists="overwrite").run(backend)
    assert first[0].output == out / "in_x4 (1).png" and digest(foreign) == before
    assert "a file this app did not write" in first[0].warnings[0]
    # other settings: planned afresh; its output carries no provenance (stripped), but the
    # journal knows it, unchanged since written, as this batch's own: replaced in place
    second = plan_batch([src], out, strip_metadata=True, on_exists="overwrite",
                        quality=80).run(backend)
    assert second[0].status == "done" and second[0].output == first[0].output
    assert second[0].warnings[0].startswith("kept 'in_x4.png', a file this app did not write, "
                                            "and wrote 'in_x4 (1).png'")
    assert digest(foreign) == before
    assert names(out) == [JOURNAL_NAME, "in_x4 (1).png", "in_x4.png"]
    # once the user has changed that output, it is theirs
    (out / "in_x4 (1).png").write_bytes(b"edited")
    third = plan_batch([src], out, strip_metadata=True, on_exists="overwrite",
                       quality=70).run(backend)
    assert third[0].output == out / "in_x4 (2).png"
    assert (out / "in_x4 (1).png").read_bytes() == b"edited"


def test_rescans_skip_earlier_outputs_stored_under_the_input_folder(tmp_path, backend):
    """Outputs of earlier runs are recognised by content: the provenance record, or (written
    with metadata stripped) the journal of the run that wrote them."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    save(root / "a.png", photo())
    save(root / "sub" / "b.png", photo(offset=150))
    runs = [
        ({"output_dir": root / "big"}, ["big/a_x4.png", "big/sub/b_x4.png"]),
        ({"output_dir": root / "plain", "strip_metadata": True},
         ["plain/a_x4.png", "plain/sub/b_x4.png"]),
        ({"naming": "{stem}-up.{ext}", "strip_metadata": True}, ["a-up.png", "sub/b-up.png"]),
    ]
    for options, written in runs:
        results = plan_batch([root], recursive=True, **options).run(backend)
        assert [r.input.relative_to(root).as_posix() for r in results] == ["a.png", "sub/b.png"]
        assert [r.output.relative_to(root).as_posix() for r in results] == written
    again = plan_batch([root], tmp_path / "out", recursive=True)
    assert [r.input.relative_to(root).as_posix() for r in again.requests] == ["a.png", "sub/b.png"]


def test_a_symbolic_link_loop_fails_alone(tmp_path, backend):
    folder = tmp_path / "in"
    folder.mkdir()
    save(folder / "a.png", photo())
    (folder / "self.png").symlink_to("self.png")
    (folder / "gone.png").symlink_to("missing.png")
    results = {r.input.name: r for r in plan_batch([folder], tmp_path / "out").run(backend)}
    assert results["a.png"].status == "done"
    assert results["self.png"].status == results["gone.png"].status == "failed"
    assert results["self.png"].error == (f"Cannot read '{folder / 'self.png'}': it is a symbolic "
                                         "link that loops (it leads back to itself)")
    assert "does not exist" in results["gone.png"].error


def test_resume_redoes_inputs_that_changed(tmp_path, backend):
    folder = tmp_path / "in"
    folder.mkdir()
    a = save(folder / "a.bmp", photo())  # BMP: the same size whatever the pixels
    b = save(folder / "b.png", photo(offset=150))
    out = tmp_path / "out"
    first = plan_batch([folder], out).run(backend)
    assert [r.status for r in first] == ["done", "done"]
    old = digest(first[0].output)
    st = a.stat()

    # written again with the same pixels, and touched: new times, the same content
    save(a, photo())
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = plan_batch([folder], out).run(backend)
    assert [r.error for r in again] == ["already done in an earlier run"] * 2

    # edited: other pixels, with the same size and modification time as before
    save(a, photo(offset=300))
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (a.stat().st_size, a.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    edited = plan_batch([folder], out).run(backend)
    assert [r.status for r in edited] == ["done", "skipped"]
    assert edited[0].output == first[0].output and digest(first[0].output) != old  # replaced
    assert names(out) == [JOURNAL_NAME, "a_x4.png", "b_x4.png"]
    check = run_request(UpscaleRequest(a, output=tmp_path / "check"), backend)
    assert np.array_equal(read_image(check.output).rgb, read_image(first[0].output).rgb)
    assert entries(out)["a.bmp"]["source"]["sha256"] == hashlib.sha256(a.read_bytes()).hexdigest()


def test_a_second_run_on_the_folder_stops_and_a_stale_lock_is_taken_over(tmp_path, backend):
    folder = tmp_path / "in"
    folder.mkdir()
    save(folder / "a.png", photo())
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out):  # another run holds the folder
        with pytest.raises(FolderInUseError, match=rf"'{out}' is in use by another bimacosr run "
                                                   rf"\(process {os.getpid()} on "):
            plan_batch([folder], out).run(backend)
        assert names(out) == [LOCK_NAME]  # nothing done, no journal touched
    assert names(out) == []
    # the lock file of a run that was killed: no process holds it any more
    (out / LOCK_NAME).write_text('{"pid": 4000000, "host": "gone", "started": "2020-01-01"}')
    results = plan_batch([folder], out).run(backend)
    assert [r.status for r in results] == ["done"]
    assert names(out) == [JOURNAL_NAME, "a_x4.png"]


def test_the_journal_is_appended_to_and_an_old_one_is_ignored(tmp_path, backend):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        save(folder / f"p{i}.png", photo(offset=150 * i))
    out = tmp_path / "out"
    out.mkdir()
    journal = out / JOURNAL_NAME
    journal.write_text(json.dumps({  # version 1, which said p0 was done
        "format": "bimacosr-journal", "version": 1,
        "items": [{"input": str(folder / "p0.png"), "output": str(out / "p0_x4.png"),
                   "state": "done", "error": None, "settings": {}}]}, indent=1))
    results = plan_batch([folder], out).run(backend)
    assert [r.status for r in results] == ["done"] * 3
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert lines[0] == {"format": "bimacosr-journal", "version": 2}
    # written once when the batch started, then one line appended per change
    assert [(Path(e["input"]).name, e["state"]) for e in lines[1:]] == [
        ("p0.png", "pending"), ("p1.png", "pending"), ("p2.png", "pending"),
        ("p0.png", "done"), ("p1.png", "done"), ("p2.png", "done")]
    with journal.open("a") as fp:
        fp.write('{"input": "' + str(folder / "p1.png") + '", "sta')  # cut short by a crash
    assert [r.error for r in plan_batch([folder], out).run(backend)] == [
        "already done in an earlier run"] * 3
    assert len(journal.read_text().splitlines()) == 4  # rewritten: one line per entry
