"""``bimacosr info``: one JSON object describing the checkpoint, backends, kernels, formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bimacosr_app.checkpoint import load_packed
from bimacosr_app.engine import default_checkpoint_path

ROOT = Path(__file__).resolve().parents[1]


def _info(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bimacosr_app", "info", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_info_json_describes_the_shipped_checkpoint():
    done = _info("--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    for key in ("backends", "checkpoint", "compression_ratio", "kernels", "cuda", "formats",
                "app_version", "torch_version"):
        assert key in info
    assert "reference" in info["backends"]
    shipped = load_packed(default_checkpoint_path())
    ck = info["checkpoint"]
    assert ck["content_sha256"] == shipped.content_sha256
    assert ck["format_version"] == "2" and ck["diffusion_steps"] == shipped.diffusion.steps
    assert ck["file_size"] == default_checkpoint_path().stat().st_size
    assert info["compression_ratio"] == ck["fp32_bytes"] / ck["file_size"] > 10
    assert "available" in info["kernels"]
    assert "PNG" in info["formats"] and "JPEG" in info["formats"]


def test_info_reports_an_unusable_checkpoint(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    done = _info("--json", "--checkpoint", str(bad))
    assert done.returncode == 1
    info = json.loads(done.stdout)
    assert "error" in info["checkpoint"] and info["compression_ratio"] is None
    assert "reference" in info["backends"]
    text = _info("--checkpoint", str(bad))
    assert text.returncode == 1 and "unusable" in text.stdout
