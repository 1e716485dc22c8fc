"""``bimacosr upscale`` as a user runs it: subprocesses on folders of real photos."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from val_photos import val_photos

from bimacosr_app.cli import main
from bimacosr_app.image_io import probe_image
from bimacosr_app.jobs import JOURNAL_NAME
from bimacosr_app.jobs.journal import LOCK_NAME, Journal

ROOT = Path(__file__).resolve().parents[1]
# LR size of the test photos: wider than one 64-pixel tile, so that --tile-budget 1 (64-pixel
# tiles) gives 2 tiles each, and small (the model pads each tile to 64 x 128 LR pixels)
W, H = 72, 48


def photo(i: int = 0) -> Image.Image:
    names = val_photos()
    with Image.open(names[i % len(names)]) as im:
        im = im.convert("RGB")
    return im.crop((0, 0, 4 * W, 4 * H)).resize((W, H), Image.Resampling.BOX)


def cli(*args: str | Path, **kwargs) -> subprocess.Popen | subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bimacosr_app", "upscale", *map(str, args)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **kwargs.pop("env", {})}
    if kwargs.pop("background", False):
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def outputs(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != JOURNAL_NAME)


def results(stdout: str) -> list[dict]:
    """The ``--json`` result events."""
    events = [json.loads(line) for line in stdout.splitlines()]
    return [e for e in events if e["event"] == "result"]


def next_event(proc: subprocess.Popen, kind: str) -> dict:
    """Read ``--json`` events of a running batch until one of ``kind``."""
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == kind:
            return event
    raise AssertionError(f"no {kind} event (exit {proc.wait()}): {proc.stderr.read()}")


def states(folder: Path) -> list[str]:
    """The journal's states, in input order."""
    return [e["state"] for e in Journal(folder / JOURNAL_NAME).load().values()]


def test_recursive_json_mirrors_tree_and_exit_codes(tmp_path):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    photo(0).save(src / "a.png")
    photo(1).save(src / "sub" / "b.jpg", quality=90)
    (src / "sub" / "bad.png").write_text("not an image")
    out = tmp_path / "out"

    run = cli(src, "-o", out, "--recursive", "--json", "--format", "png", "--backend",
              "reference", "--scale", "2")
    assert run.returncode == 1, run.stderr
    lines = results(run.stdout)
    assert [Path(r["input"]).name for r in lines] == ["a.png", "b.jpg", "bad.png"]
    assert [(r["index"], r["count"]) for r in lines] == [(1, 3), (2, 3), (3, 3)]
    assert [r["status"] for r in lines] == ["done", "done", "failed"]
    for r in lines[:2]:
        assert (r["width_in"], r["height_in"], r["width_out"], r["height_out"]) == (W, H, 2 * W,
                                                                                   2 * H)
        assert r["backend"] == "reference" and r["error"] is None and r["seconds"] > 0
    assert "contains text" in lines[2]["error"]
    assert outputs(out) == ["a_x2.png", "sub/b_x2.png"]
    assert "1 failed" in run.stderr and "contains text" in run.stderr

    (src / "sub" / "bad.png").unlink()  # fixed: the same command now succeeds
    run = cli(src, "-o", out, "--recursive", "--json", "--format", "png", "--backend",
              "reference", "--scale", "2")
    assert run.returncode == 0, run.stderr
    assert [r["status"] for r in results(run.stdout)] == ["skipped"] * 2
    assert outputs(out) == ["a_x2.png", "sub/b_x2.png"]


def test_warnings_are_printed_with_the_result_and_in_the_summary(tmp_path):
    """A result's warnings (here: with --on-exists overwrite, a file of the user's where the
    output would go, kept) go to the result line, the --json result event and the summary."""
    src, out = tmp_path / "photos", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    photo(0).save(src / "a.png")
    photo(1).save(out / "a_x4.png")  # the user's own file, not written by the app
    run = cli(src / "a.png", "-o", out, "--json", "--backend", "reference", "--on-exists",
              "overwrite")
    assert run.returncode == 0, run.stderr
    (result,) = results(run.stdout)
    assert result["status"] == "done" and Path(result["output"]).name == "a_x4 (1).png"
    assert result["warnings"] and "a_x4.png" in result["warnings"][0]
    assert f"  warning: {result['warnings'][0]}" in run.stderr
    assert "1 with warnings" in run.stderr
    assert f"  warning: a.png: {result['warnings'][0]}" in run.stderr


def test_outputs_next_to_inputs_by_default(tmp_path):
    photo(2).save(tmp_path / "c.jpg", quality=90)
    run = cli(tmp_path / "c.jpg", "--backend", "reference", "--quality", "80")
    assert run.returncode == 0, run.stderr
    assert probe_image(tmp_path / "c_x4.jpg").width == 4 * W
    assert run.stdout == ""  # no --json: nothing on stdout
    assert "1 done" in run.stderr


def test_usage_errors_exit_2(tmp_path, capsys):
    run = cli(tmp_path / "missing.png")
    assert run.returncode == 2 and "does not exist" in run.stderr
    (tmp_path / "empty").mkdir()
    assert main(["upscale", str(tmp_path / "empty")]) == 2
    assert "no images found" in capsys.readouterr().err
    for bad in (["--scale", "5"], ["--format", "gif"], ["--quality", "0"], ["--on-exists", "x"],
                ["--tile-budget", "-1"], ["--tile-budget", "nan"], ["--tile-budget", "inf"],
                ["--tile-budget", "0"], []):
        with pytest.raises(SystemExit) as exc:
            main(["upscale", *bad, *([str(tmp_path)] if bad else [])])
        assert exc.value.code == 2


def test_an_output_that_cannot_be_a_folder_is_refused_before_any_work(tmp_path, capsys):
    photo(0).save(tmp_path / "a.png")
    photo(1).save(tmp_path / "b.png")
    (tmp_path / "notes").write_text("a file")
    cases = [
        (["-o", tmp_path / "notes"], f"the output '{tmp_path / 'notes'}' is not a folder (it is "
                                     "a file)"),
        (["-o", tmp_path / "notes" / "sub"], f"the output '{tmp_path / 'notes' / 'sub'}' is not "
                                             f"a folder ('{tmp_path / 'notes'}' is a file)"),
        (["-o", tmp_path / "X.png"], f"the output '{tmp_path / 'X.png'}' names one file, but "
                                     "there are 2 images to upscale: give a folder for them"),
    ]
    for args, message in cases:
        assert main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                     *map(str, args)]) == 2
        assert capsys.readouterr().err == f"bimacosr upscale: error: {message}\n"  # no model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "notes"]
    # one image may be given its output file
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "X.png"),
                 "--backend", "reference"]) == 0
    assert probe_image(tmp_path / "X.png").width == 4 * W
    assert sorted(p.name for p in tmp_path.iterdir()) == [JOURNAL_NAME, "X.png", "a.png",
                                                          "b.png", "notes"]


def test_cuda_without_a_gpu_says_what_is_missing(tmp_path):
    photo(0).save(tmp_path / "a.png")
    for flag in (["--device", "cuda"], ["--backend", "cuda"]):
        run = cli(tmp_path / "a.png", *flag, env={"CUDA_VISIBLE_DEVICES": ""})
        assert run.returncode == 2, run.stderr
        assert run.stderr.startswith(f"bimacosr upscale: error: {' '.join(flag)} needs ")
        assert "or leave it out to run on the CPU" in run.stderr and "Traceback" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_json_reports_progress_within_each_image(tmp_path):
    photo(0).save(tmp_path / "a.png")
    photo(1).save(tmp_path / "b.png")
    run = cli(tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "out", "--json",
              "--backend", "reference", "--tile-budget", "1")  # two tiles each
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    keys = {"event", "index", "count", "input", "fraction", "tiles_done", "tiles_total",
            "eta_s", "batch_fraction", "batch_eta_s"}
    progress = [e for e in events if e["event"] == "progress"]
    assert all(set(e) == keys for e in progress)
    assert [(e["index"], e["tiles_done"], e["tiles_total"]) for e in progress] == [
        (1, 1, 2), (1, 2, 2), (1, 2, 2), (2, 1, 2), (2, 2, 2), (2, 2, 2)]  # tiles, then the end
    first_tile = progress[0]["fraction"]  # of the image's area
    assert 0 < first_tile < 1 and progress[1]["fraction"] == progress[2]["fraction"] == 1
    assert progress[0]["eta_s"] >= 0 and progress[0]["batch_eta_s"] is None  # 0.1 s steps
    assert progress[0]["batch_fraction"] == pytest.approx(first_tile / 2, abs=1e-3)
    assert progress[3]["batch_fraction"] == pytest.approx(0.5 + first_tile / 2, abs=1e-3)
    assert progress[3]["batch_eta_s"] >= 0  # the first image timed the speed
    assert [e["event"] for e in events].index("result") == 3  # after the first image's events
    assert [e["status"] for e in results(run.stdout)] == ["done", "done"]


def _folder_of(n: int, folder: Path) -> None:
    folder.mkdir()
    for i in range(n):
        photo(i).save(folder / f"p{i}.png")


def test_killed_batch_resumes_and_completes_each_file_once(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    _folder_of(3, src)
    args = (src, "-o", out, "--backend", "reference", "--tile-budget", "1")  # 2 tiles each
    proc = cli(*args, "--json", background=True)
    next_event(proc, "result")  # the first image is written
    proc.kill()
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    first = [n for n in outputs(out) if not n.startswith(".")]
    assert 1 <= len(first) < 3
    assert (out / LOCK_NAME).exists()  # left by the killed run: stale, taken over below

    run = cli(*args, "--json")
    assert run.returncode == 0, run.stderr
    expected = [f"p{i}_x4.png" for i in range(3)]
    assert outputs(out) == expected  # each once, no "(1)" copies, no .part leftovers, no lock
    journal = Journal(out / JOURNAL_NAME).load()
    assert sorted(Path(e["output"]).name for e in journal.values()) == expected
    assert states(out) == ["done"] * 3
    statuses = [r["status"] for r in results(run.stdout)]
    assert statuses.count("done") == 3 - statuses.count("skipped") and len(statuses) == 3
    for name in expected:
        assert probe_image(out / name).width == 4 * W


@pytest.mark.parametrize("sig,code,said", [(signal.SIGINT, 130, "Interrupted"),
                                            (signal.SIGTERM, 143, "Terminated (SIGTERM)")])
def test_ctrl_c_and_sigterm_stop_without_partial_files(tmp_path, sig, code, said):
    src, out = tmp_path / "in", tmp_path / "out"
    _folder_of(4, src)  # 8 tiles: the signal lands mid-batch even when this test runs slowly
    proc = cli(src, "-o", out, "--backend", "reference", "--tile-budget", "1", "--json",
               background=True)
    next_event(proc, "progress")  # the first tile is done
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert f"{said}: no partial file was written. Run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    # no temporary file, no lock; Ctrl+C can land between an output's atomic rename and the
    # journal's update: then one complete output is still "pending" in the journal (a resume
    # marks it done, jobs/batch.py; test_killed_batch_resumes_and_completes_each_file_once)
    assert [n for n in outputs(out) if not n.endswith(".png")] == []
    assert "pending" in states(out)
    assert states(out).count("done") <= len(outputs(out)) <= states(out).count("done") + 1
    assert all(probe_image(out / n).width == 4 * W for n in outputs(out))


def test_a_second_run_on_one_output_folder_is_refused(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    _folder_of(2, src)
    first = cli(src, "-o", out, "--backend", "reference", "--tile-budget", "1", "--json",
                background=True)
    next_event(first, "progress")  # it holds the folder
    first.send_signal(signal.SIGSTOP)  # and keeps it while the second one tries
    try:
        second = cli(src, "-o", out, "--backend", "reference")
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 1, second.stderr
    assert (f"bimacosr upscale: error: '{out}' is in use by another bimacosr run (process "
            f"{first.pid} on ") in second.stderr
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert outputs(out) == ["p0_x4.png", "p1_x4.png"]  # each once, no "(1)" copies
    assert [r["status"] for r in results(stdout)] == ["done", "done"]


class _Terminal:
    """stderr as a terminal: what was written, in order."""

    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def test_terminal_shows_each_tile_and_the_batch_with_its_eta(tmp_path, monkeypatch):
    _folder_of(2, tmp_path / "in")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                 "--backend", "reference", "--tile-budget", "1"]) == 0
    lines = [line.strip() for line in terminal.text.replace("\r", "\n").splitlines()]
    shown = [re.fullmatch(r"\[(\d)/2\] p\d\.png +(\d+)% \(tile (\d)/2.*\| batch +(\d+)%(.*)", line)
             for line in lines]
    shown = [(int(m[1]), int(m[2]), int(m[3]), int(m[4]), "ETA" in m[5]) for m in shown if m]
    assert {(image, tile) for image, _, tile, _, _ in shown} == {(1, 1), (1, 2), (2, 1), (2, 2)}
    for image, percent, _, batch_percent, batch_eta in shown:
        # two images of the same size: each is half of the batch
        assert abs(batch_percent - (50 * (image - 1) + percent / 2)) <= 1
        # the first image timed the speed: the batch shows its time left from then on
        assert batch_eta == (image == 2)
    assert "Summary: 2 done, 0 skipped, 0 failed" in lines
