"""``bimacosr --self-test`` in development mode, its golden keyed to the model's content hash,
the GUI's quit-after-start hook and packaging/smoke_test.py run against a launcher "bundle"
of this checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bimacosr_app import selftest
from bimacosr_app.checkpoint import load_packed
from bimacosr_app.cli import main as cli_main
from bimacosr_app.engine import available_backends, default_checkpoint_path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "golden" / "tiny_packed.safetensors"


@pytest.fixture(scope="module")
def tiny_golden(tmp_path_factory) -> Path:
    """A self-test folder whose golden was made from the tiny test model."""
    data = tmp_path_factory.mktemp("selftest")
    meta = selftest.make_golden(TINY, data)
    assert meta["model_sha256"] == load_packed(TINY).content_sha256
    return data


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_default_data_dir_is_the_shipped_self_test_data():
    data = selftest.default_data_dir()
    assert data == ROOT / "resources" / "selftest"  # the source tree here (bundled.py)
    meta = json.loads((data / selftest.GOLDEN_FILE).read_text())
    assert {"model_sha256", "seed", "backend", "tolerance"} <= meta.keys()
    assert (data / meta["input"]).is_file() and (data / meta["output"]).is_file()


@pytest.mark.slow
def test_cli_self_test_passes_on_the_shipped_model(capsys):
    shipped = load_packed(default_checkpoint_path()).content_sha256
    golden = json.loads((selftest.default_data_dir() / selftest.GOLDEN_FILE).read_text())
    if golden["model_sha256"] != shipped:
        pytest.fail(f"resources/selftest was made for model {golden['model_sha256']}, the "
                    f"shipped model is {shipped}: {selftest.REGENERATE_HINT}")
    assert cli_main(["--self-test"]) == 0
    out = capsys.readouterr().out
    assert "self-test passed" in out
    for name in available_backends():
        assert f"{name:<12} ok" in out


def test_every_available_backend_matches_a_fresh_golden(tiny_golden):
    report = selftest.run_self_test(TINY, tiny_golden)
    assert report.ok, report.reason
    assert [r.name for r in report.results] == available_backends()
    ref = next(r for r in report.results if r.name == "reference")
    assert ref.max_abs < 2e-3  # the golden is float16 of the reference backend's output
    assert all(r.pooled_mean_abs <= selftest.MEAN_ABS_TOL for r in report.results)


def test_golden_for_another_model_is_refused_by_name(tiny_golden, capsys):
    tiny = load_packed(TINY).content_sha256
    shipped = load_packed(default_checkpoint_path()).content_sha256
    report = selftest.run_self_test(None, tiny_golden)
    assert not report.ok and report.results == []
    assert f"golden was made for model {tiny}, bundled model is {shipped}" in report.reason
    assert "make_selftest_golden.py" in report.reason
    assert selftest.main(["--data", str(tiny_golden)]) == 1
    assert "bundled model is" in capsys.readouterr().out


def test_low_frequency_change_fails_but_sign_flip_noise_passes(tiny_golden, tmp_path):
    golden = np.load(tiny_golden / selftest.OUTPUT_FILE)["output"].astype(np.float32)
    yy, xx = np.mgrid[0:golden.shape[1], 0:golden.shape[2]]
    checker = np.where((yy + xx) % 2 == 0, 0.3, -0.3).astype(np.float32)
    cases = {
        # +-0.3 between neighbouring pixels, like the chaos of a flipped sign: averages out
        "flips": (np.clip(golden + checker * (golden > 0.3) * (golden < 0.7), 0, 1), True),
        "brighter": (np.clip(golden + 0.1, 0, 1), False),  # a wrong model shifts colours
    }
    for name, (changed, passes) in cases.items():
        data = _copy(tiny_golden, tmp_path / name)
        np.savez_compressed(data / selftest.OUTPUT_FILE, output=changed.astype(np.float16))
        report = selftest.run_self_test(TINY, data, backends=["reference"])
        assert report.ok is passes, (name, report.reason)
        if not passes:
            assert "reference: mean |diff| from the golden at 1/8 resolution" in report.reason


def test_compare_rejects_bad_outputs():
    golden = np.full((3, 16, 16), 0.5, np.float32)
    assert selftest._compare(golden.copy(), golden, 0.03, 8)[1] == ""
    nan = golden.copy()
    nan[0, 0, 0] = np.nan
    assert "NaN" in selftest._compare(nan, golden, 0.03, 8)[1]
    assert "outside [0, 1]" in selftest._compare(golden + 0.6, golden, 0.03, 8)[1]
    assert "shape" in selftest._compare(golden[:, :8], golden, 0.03, 8)[1]


def test_unusable_data_or_backend_fails_with_a_reason(tiny_golden, tmp_path):
    report = selftest.run_self_test(TINY, tmp_path / "missing")
    assert not report.ok and "self-test data unusable" in report.reason
    if "cuda" not in available_backends():
        report = selftest.run_self_test(TINY, tiny_golden, backends=["cuda"])
        assert not report.ok and report.reason.startswith("cuda: RuntimeError")
    report = selftest.run_self_test(tmp_path / "none.safetensors", tiny_golden)
    assert not report.ok and "cannot be loaded" in report.reason


def test_gui_quit_after_start_hook_reports_an_interactive_window(qtbot, tmp_path, monkeypatch):
    from bimacosr_app import gui
    from bimacosr_app.gui.settings import Settings

    monkeypatch.setenv("BIMACOSR_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("BIMACOSR_DATA_DIR", str(tmp_path / "data"))
    settings = Settings(tmp_path / "config" / "settings.ini")
    for name in ("cpu-packed", "reference"):
        settings.set_calibration(name, 1.0)  # no calibration upscale at start
    settings.sync()
    ready = tmp_path / "ready.json"
    monkeypatch.setenv("BIMACOSR_QUIT_AFTER", "0.2")
    monkeypatch.setenv("BIMACOSR_READY_FILE", str(ready))
    assert gui.main([]) == 0
    state = json.loads(ready.read_text())
    assert state["engine"] == "ready" and state["backends"] == available_backends()
    assert state["closing_at"] - state["interactive_at"] >= 0.18  # Qt coarse timers: +-5 %


def _launcher_bundle(folder: Path) -> Path:
    """A stand-in for the frozen bundle: bimacosr and bimacosr-gui that run this checkout."""
    folder.mkdir()
    for name, module in (("bimacosr", "bimacosr_app.cli"), ("bimacosr-gui", "bimacosr_app.gui")):
        code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from {module} import main; " \
               "sys.exit(main())"
        script = folder / name
        script.write_text(f"#!/bin/sh\nexec {sys.executable} -c \"{code}\" \"$@\"\n")
        script.chmod(0o755)
    return folder


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="POSIX launcher scripts")
def test_smoke_test_script_passes_on_a_bundle_and_its_archive(tmp_path):
    bundle = _launcher_bundle(tmp_path / "BiMaCoSR_Upscaler-test")
    archive = tmp_path / "bundle.tar.xz"  # the Linux fallback's format
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(bundle, arcname=bundle.name)
    results = tmp_path / "smoke.json"
    for target in (bundle, archive):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "packaging" / "smoke_test.py"), str(target),
             "--gui-seconds", "0.5", "--json", str(results)],
            capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "smoke test passed" in proc.stdout
        measured = json.loads(results.read_text())
        assert measured["self_test_s"] > 0 and measured["gui_interactive_s"] > 0
        assert measured["gui_engine_backends"] == available_backends()


@pytest.mark.skipif(os.name == "nt", reason="POSIX launcher scripts")
def test_smoke_test_script_fails_when_the_self_test_fails(tmp_path):
    bundle = tmp_path / "broken"
    bundle.mkdir()
    for name in ("bimacosr", "bimacosr-gui"):
        (bundle / name).write_text("#!/bin/sh\necho 'self-test FAILED: no model' >&2\nexit 1\n")
        (bundle / name).chmod(0o755)
    proc = subprocess.run([sys.executable, str(ROOT / "packaging" / "smoke_test.py"),
                           str(bundle)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "SMOKE TEST FAILED: bimacosr --self-test exited 1" in proc.stderr
    assert "no model" in proc.stderr
