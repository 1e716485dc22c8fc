"""The CPU path runs without torch (issue 15): the native runtime's modules never import it,
and in a Python where ``import torch`` fails (``sys.modules["torch"] = None``) the engine picks
``cpu-packed`` and upscales real photos end to end, at scales 4 and 2, with outputs equal to the
same run in a process that has torch; the CLI (upscale, info, the self-test) runs there and
says what the torch backends need."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from val_photos import photo_lr

pytest.importorskip("bimacosr_app._bitkernels",
                    reason="native kernels not built (pip install -e . needs a C++ compiler)")

PACKAGE = Path(__file__).resolve().parents[1] / "bimacosr_app"
# Modules of the CPU upscale path that never import torch, lazily or not.
NEVER = [
    *sorted((PACKAGE / "runtime").glob("*.py")),
    PACKAGE / "model" / "config.py",
    PACKAGE / "model" / "layout.py",
    PACKAGE / "checkpoint" / "bitpack.py",
    PACKAGE / "checkpoint" / "format.py",
    PACKAGE / "engine" / "cpu_packed.py",
    PACKAGE / "tiling" / "__init__.py",
    PACKAGE / "tiling" / "plan.py",
    PACKAGE / "tiling" / "stitch.py",
    PACKAGE / "native.py",
    PACKAGE / "jobs" / "run.py",
]
# Modules on that path that import torch only inside functions the CPU path does not call
# (the torch backends, CUDA memory, the torch model of a checkpoint) or load lazily.
NOT_AT_IMPORT = [
    PACKAGE / "model" / "__init__.py",
    PACKAGE / "checkpoint" / "__init__.py",
    PACKAGE / "checkpoint" / "load.py",
    PACKAGE / "engine" / "__init__.py",
    PACKAGE / "engine" / "backends.py",
    PACKAGE / "tiling" / "memory.py",
]
BLOCK_TORCH = "import sys; sys.modules['torch'] = None\n"


def _imported_names(nodes) -> set[str]:
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("module", NEVER, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_runtime_modules_never_import_torch(module):
    assert "torch" not in _imported_names(ast.walk(_tree(module)))


@pytest.mark.parametrize("module", NOT_AT_IMPORT, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_path_modules_do_not_import_torch_at_import(module):
    tree = _tree(module)
    top = [n for n in tree.body if not isinstance(n, ast.If)]  # "if TYPE_CHECKING:" aside
    assert "torch" not in _imported_names(top)


def _run_blocked(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh Python where importing torch fails."""
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    lr = photo_lr("kde_BytheWater.webp", 150, 100)  # not a multiple of 64: padded
    Image.fromarray(np.round(lr * 255).astype(np.uint8)).save(path)
    return path


BATCH = """
import json, sys
from pathlib import Path
from bimacosr_app.engine import select_backend
from bimacosr_app.jobs import plan_batch
backend = select_backend(sys.argv[3])
out = {}
for scale in (4, 2):
    results = plan_batch([Path(sys.argv[1])], Path(sys.argv[2]) / f"x{scale}", scale=scale,
                         on_exists="overwrite").run(backend)
    out[scale] = [(r.status, r.error, str(r.output)) for r in results]
print(json.dumps({"backend": backend.name, "results": out,
                  "torch_blocked": sys.modules.get("torch", "absent") is None}))
"""


def _batch(prelude: str, photo: Path, out: Path, backend: str) -> dict:
    """The CLI's batch path (plan_batch, Batch.run) on ``photo`` at x4 and x2 in a fresh
    Python started with ``prelude``; its report."""
    done = subprocess.run([sys.executable, "-c", prelude + BATCH, str(photo), str(out), backend],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def test_upscale_without_torch_equals_upscale_with_it(tmp_path):
    """The same files as with torch loaded (whose OpenMP team the kernels then run on)."""
    photo = _photo(tmp_path)
    free = _batch(BLOCK_TORCH, photo, tmp_path / "free", "auto")
    assert free["backend"] == "cpu-packed"  # auto: without torch there is no CUDA
    assert free["torch_blocked"]  # nothing tried to import it (that would have failed)
    with_torch = _batch("import torch\n", photo, tmp_path / "torch", "cpu-packed")
    for scale in (4, 2):
        [(status, error, output)] = free["results"][str(scale)]
        assert status == "done" and error is None
        assert with_torch["results"][str(scale)][0][0] == "done"
        got = _pixels(Path(output))
        assert got.shape == (100 * scale, 150 * scale, 3)
        np.testing.assert_array_equal(
            got, _pixels(tmp_path / "torch" / f"x{scale}" / Path(output).name))


def _cli_blocked(*args: str) -> subprocess.CompletedProcess:
    """``bimacosr ARGS`` in a fresh Python where importing torch fails."""
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + "import runpy; runpy.run_module('bimacosr_app', "
         "run_name='__main__')", *args], cwd=root, capture_output=True, text=True, timeout=600)


def test_cli_upscale_without_torch(tmp_path):
    """``bimacosr upscale`` itself: ``auto`` is cpu-packed, and asking for CUDA says how to
    get it."""
    photo = _photo(tmp_path)
    done = _cli_blocked("upscale", str(photo), "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "on cpu-packed (cpu)" in done.stderr
    assert _pixels(tmp_path / "out" / "photo_x4.png").shape == (400, 600, 3)
    cuda = _cli_blocked("upscale", str(photo), "-o", str(tmp_path / "cuda"), "--device", "cuda")
    assert cuda.returncode == 2 and "Traceback" not in cuda.stderr
    assert cuda.stderr.startswith("bimacosr upscale: error: --device cuda needs ")
    assert "PyTorch with CUDA (not installed here: pip install 'bimacosr-upscaler[cuda]'" in (
        cuda.stderr)
    assert not (tmp_path / "cuda").exists()


def test_info_and_self_test_without_torch():
    """What the base install offers: cpu-packed; reference and cuda listed with what they
    need; the self-test runs cpu-packed and names the backends it skips."""
    info = _cli_blocked("info", "--json")
    assert info.returncode == 0, info.stderr
    facts = json.loads(info.stdout)
    assert facts["backends"] == ["cpu-packed"] and facts["torch_version"] is None
    assert set(facts["unavailable"]) == {"reference", "cuda"}
    assert all("bimacosr-upscaler[cuda]" in needs for needs in facts["unavailable"].values())
    text = _cli_blocked("info")
    assert text.returncode == 0 and "(without PyTorch)" in text.stdout
    assert "reference is not available: it needs PyTorch (not installed here" in text.stdout
    test = _cli_blocked("--self-test")
    assert test.returncode == 0, test.stdout + test.stderr
    assert "self-test passed: 1 backend(s) (cpu-packed)" in test.stdout
    assert "reference    skip   needs PyTorch" in test.stdout
