"""The package's layer rules, read from every module's imports (lazy ones inside functions
too), so that a violation fails here rather than in a review:

* only ``gui`` imports Qt (PySide6 / shiboken6); the engine, jobs and CLI run without it;
* ``gui`` imports of the app only ``jobs`` (the one engine room: requests, the queue, its
  runner, the model session, options, image reading) and the package root's name and version
  and the leaf modules ``logs`` and ``bundled`` (its log file and icons), so it never runs a
  pipeline of its own;
* nothing imports ``training`` (it produces models; the app never needs it);
* ``model`` imports nothing of the app but the native kernels' loader (no engine, checkpoint,
  jobs, ...);
* the leaf modules (``atomic``, ``bundled``, ``logs``, ``native``, ``metrics``) import no other
  part of the app (``logs`` reads the app's name from the package root).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bimacosr_app"
QT = ("PySide6", "shiboken6")
LEAVES = {"atomic", "bundled", "logs", "native", "metrics"}


def _part(module: Path) -> str:
    """The first component below bimacosr_app: a subpackage or a top-level module's name."""
    rel = module.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0] if rel.parts[0] != "__init__" else ""


def _imports(module: Path) -> list[str]:
    """Absolute names of everything ``module`` imports (relative imports resolved)."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    rel = module.relative_to(PACKAGE.parent).with_suffix("").parts
    package = rel if module.name == "__init__.py" else rel[:-1]
    package = package[:-1] if package[-1] == "__init__" else package
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.append(prefix)
            names += [f"{prefix}.{alias.name}" for alias in node.names]
    return names


def _app_parts(names: list[str]) -> set[str]:
    """The parts of the app among imported names (``bimacosr_app.X...`` -> X; the root: "")."""
    parts = set()
    for name in names:
        if name == "bimacosr_app":
            parts.add("")
        elif name.startswith("bimacosr_app."):
            first = name.split(".")[1]
            is_module = (PACKAGE / first).is_dir() or (PACKAGE / f"{first}.py").is_file()
            parts.add(first if is_module else "")  # else a name of the root (__version__)
    return parts


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_rules_see_every_module_and_resolve_relative_imports():
    assert len(MODULES) > 60
    noise = _imports(PACKAGE / "model" / "noise.py")
    assert "bimacosr_app.native.load_kernels" in noise  # "from ..native import load_kernels"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: str(m.relative_to(PACKAGE)))
def test_layer_rules(module):
    part = _part(module)
    names = _imports(module)
    used = _app_parts(names) - {part}
    if part != "gui":
        assert not [n for n in names if n.split(".")[0] in QT], "only gui imports Qt"
    else:
        assert used <= {"jobs", "", "logs", "bundled"}, f"gui imports {sorted(used)}"
    if part != "training":
        assert "training" not in used, "nothing imports training"
    if part == "model":
        assert used <= {"native"}, f"model imports {sorted(used)}"
    if part in LEAVES:
        assert used <= ({""} if part == "logs" else set()), f"{part} imports {sorted(used)}"


LAZY_PACKAGES = ("model", "checkpoint", "jobs")


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_lazy_exports_are_the_objects_even_after_their_submodules_were_imported(package):
    """A package that loads its names on first use (``__getattr__`` over ``_EXPORTS``) must not
    export a name that is also one of its submodules: importing that submodule first (as
    ``from pkg import a, b`` does when ``a`` lives there) sets the submodule as the package's
    attribute, and ``from pkg import b`` then hands out the module. In a fresh interpreter every
    submodule is imported first, then every name is checked."""
    import subprocess
    import sys

    script = f"""
import importlib, pkgutil, types
pkg = importlib.import_module("bimacosr_app.{package}")
for info in pkgutil.iter_modules(pkg.__path__):
    importlib.import_module(f"{{pkg.__name__}}.{{info.name}}")
bad = [n for n, source in pkg._EXPORTS.items()
       if isinstance(getattr(pkg, n), types.ModuleType)
       or getattr(pkg, n) is not getattr(importlib.import_module(source, pkg.__name__), n)]
assert not bad, bad
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr[-2000:]
