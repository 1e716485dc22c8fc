"""Where the app finds what it ships (model, icons, self-test data): bundle, wheel, source."""

from __future__ import annotations

import sys
from pathlib import Path

from bimacosr_app import bundled
from bimacosr_app.engine import default_checkpoint_path

ROOT = Path(__file__).resolve().parents[1]


def test_a_source_checkout_reads_the_top_level_resources():
    assert default_checkpoint_path() == ROOT / "resources" / "models" / "bimacosr-x4.safetensors"
    assert default_checkpoint_path().is_file()
    for relative in ("icons/bimacosr-64.png", "selftest/golden.json"):
        assert bundled.bundled_path(relative) == ROOT / "resources" / relative
        assert bundled.bundled_path(relative).is_file()


def test_a_bundle_then_package_data_come_first(tmp_path, monkeypatch):
    relative = "models/bimacosr-x4.safetensors"
    package = tmp_path / "site-packages" / "bimacosr_app"
    (package / bundled.PACKAGE_DATA / "models").mkdir(parents=True)
    (package / bundled.PACKAGE_DATA / relative).write_bytes(b"wheel")
    monkeypatch.setattr(bundled, "files", lambda _name: package)
    assert bundled.bundled_path(relative) == package / bundled.PACKAGE_DATA / relative

    frozen = tmp_path / "bundle"
    (frozen / "resources" / "models").mkdir(parents=True)
    (frozen / "resources" / relative).write_bytes(b"bundle")
    monkeypatch.setattr(sys, "_MEIPASS", str(frozen), raising=False)
    assert bundled.bundled_path(relative) == frozen / "resources" / relative

    # nothing shipped anywhere: the source tree's path, so that the error names it
    assert bundled.bundled_path("models/missing.safetensors") == (
        ROOT / "resources" / "models" / "missing.safetensors")
