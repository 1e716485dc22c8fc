"""``bimacosr upscale`` as a user runs it: subprocesses on folders of real photos."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from val_photos import val_photos

from bimacosr_app.cli import main
from bimacosr_app.image_io import probe_image
from bimacosr_app.jobs import JOURNAL_NAME

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
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if kwargs.pop("background", False):
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def outputs(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != JOURNAL_NAME)


def wait_for_output(proc: subprocess.Popen, folder: Path, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if any(not n.startswith(".") for n in outputs(folder)):
            return
        time.sleep(0.05)
    raise AssertionError(f"no output appeared (exit {proc.poll()})")


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
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [Path(r["input"]).name for r in lines] == ["a.png", "b.jpg", "bad.png"]
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
    assert [json.loads(line)["status"] for line in run.stdout.splitlines()] == ["skipped"] * 2
    assert outputs(out) == ["a_x2.png", "sub/b_x2.png"]


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
                ["--tile-budget", "-1"], []):
        with pytest.raises(SystemExit) as exc:
            main(["upscale", *bad, *([str(tmp_path)] if bad else [])])
        assert exc.value.code == 2


def _folder_of(n: int, folder: Path) -> None:
    folder.mkdir()
    for i in range(n):
        photo(i).save(folder / f"p{i}.png")


def test_killed_batch_resumes_and_completes_each_file_once(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    _folder_of(6, src)
    args = (src, "-o", out, "--backend", "reference", "--tile-budget", "1")  # 2 tiles each
    proc = cli(*args, background=True)
    wait_for_output(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    first = outputs(out)
    assert 1 <= len([n for n in first if not n.startswith(".")]) < 6

    run = cli(*args, "--json")
    assert run.returncode == 0, run.stderr
    expected = [f"p{i}_x4.png" for i in range(6)]
    assert outputs(out) == expected  # each once, no "(1)" copies, no .part leftovers
    journal = json.loads((out / JOURNAL_NAME).read_text())
    assert sorted(Path(e["output"]).name for e in journal["items"]) == expected
    assert {e["state"] for e in journal["items"]} == {"done"}
    statuses = [json.loads(line)["status"] for line in run.stdout.splitlines()]
    assert statuses.count("done") == 6 - statuses.count("skipped") and len(statuses) == 6
    for name in expected:
        assert probe_image(out / name).width == 4 * W


def test_ctrl_c_exits_130_without_partial_files(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    _folder_of(4, src)
    proc = cli(src, "-o", out, "--backend", "reference", "--tile-budget", "1", background=True)
    wait_for_output(proc, out)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Run the same command again to resume" in stderr
    assert not [n for n in outputs(out) if n.endswith(".part")]
    states = [e["state"] for e in json.loads((out / JOURNAL_NAME).read_text())["items"]]
    # Ctrl+C can land between an output's atomic rename and the journal's update: then one
    # complete output is still "pending" in the journal (a resume marks it done, jobs/batch.py;
    # test_killed_batch_resumes_and_completes_each_file_once)
    assert "pending" in states
    assert states.count("done") <= len(outputs(out)) <= states.count("done") + 1
    assert np.all([probe_image(out / n).width == 4 * W for n in outputs(out)])


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
