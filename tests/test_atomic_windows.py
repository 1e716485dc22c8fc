"""Windows' refusal to replace a file another program holds open (bimacosr_app.atomic): the
rename is retried, then the write fails with a clear message, the old file intact and no
temporary file left. Simulated here (``os.replace`` raising ``PermissionError`` as Windows
does); packaging/smoke_test_windows.sh does it for real under Wine."""

from __future__ import annotations

import os

import pytest

from bimacosr_app import atomic
from bimacosr_app.image_io.atomic import atomic_write_bytes
from bimacosr_app.image_io.errors import ImageWriteError


@pytest.fixture
def windows(monkeypatch):
    monkeypatch.setattr(atomic, "_WINDOWS", True)
    monkeypatch.setattr(atomic, "REPLACE_RETRY_DELAYS", (0.0, 0.0, 0.0))


def _refusing_replace(monkeypatch, refusals: int | None):
    calls = []
    real = os.replace

    def replace(src, dst):
        calls.append(dst)
        if refusals is None or len(calls) <= refusals:
            raise PermissionError(13, "The process cannot access the file because it is being "
                                      "used by another process", str(dst))
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    return calls


def test_retried_until_the_viewer_lets_go(tmp_path, monkeypatch, windows):
    target = tmp_path / "photo_x4.png"
    target.write_bytes(b"old")
    calls = _refusing_replace(monkeypatch, refusals=2)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert len(calls) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["photo_x4.png"]


def test_held_open_fails_clearly_and_loses_nothing(tmp_path, monkeypatch, windows):
    target = tmp_path / "photo_x4.png"
    target.write_bytes(b"old")
    calls = _refusing_replace(monkeypatch, refusals=None)
    with pytest.raises(ImageWriteError, match="open in another program") as info:
        atomic_write_bytes(target, b"new")
    assert isinstance(info.value.__cause__, atomic.TargetInUseError)
    assert len(calls) == 4  # the first try and one per delay
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["photo_x4.png"]


def test_not_retried_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_WINDOWS", False)
    target = tmp_path / "photo_x4.png"
    target.write_bytes(b"old")
    calls = _refusing_replace(monkeypatch, refusals=None)
    with pytest.raises(ImageWriteError, match="not writable"):
        atomic_write_bytes(target, b"new")
    assert len(calls) == 1
    assert target.read_bytes() == b"old"
