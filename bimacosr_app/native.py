"""Lazy, failure-tolerant access to the optional native XNOR-popcount kernels (a leaf of the
package: the model, the engine and the CLI load them from here).

``bimacosr_app._bitkernels`` is built by ``pip install`` only where a C++ compiler exists
(see ``kernels/README.md``). Nothing here raises when it is missing: :func:`load_kernels`
returns ``None`` and :func:`kernels_status` says why, so the app falls back to the torch
reference backend. ``BIMACOSR_KERNEL=none`` (or ``off``) disables the native kernels;
``BIMACOSR_KERNEL=reference`` selects their scalar reference kernel (applied by the module at
import).
"""

from __future__ import annotations

import importlib
import os
import threading
from types import ModuleType
from typing import Any

__all__ = ["MODULE_NAME", "kernels_status", "load_kernels"]

MODULE_NAME = "bimacosr_app._bitkernels"

_lock = threading.Lock()
_loaded = False
_module: ModuleType | None = None
_reason: str | None = None


def load_kernels() -> ModuleType | None:
    """Import the native kernels once; return the module, or ``None`` if unavailable."""
    global _loaded, _module, _reason
    if _loaded:
        return _module
    with _lock:
        if _loaded:
            return _module
        if os.environ.get("BIMACOSR_KERNEL", "").strip().lower() in {"none", "off", "disabled"}:
            _reason = "disabled by BIMACOSR_KERNEL"
        else:
            try:
                _module = importlib.import_module(MODULE_NAME)
            except ImportError as exc:
                _reason = f"native kernels not built or not importable ({exc})"
            except Exception as exc:  # a broken build must not take the app down
                _reason = f"native kernels failed to load: {type(exc).__name__}: {exc}"
        _loaded = True
        return _module


def kernels_status() -> dict[str, Any]:
    """Availability and configuration of the native kernels, for logs and the GUI's about box.

    Keys: ``available`` (bool), ``reason`` (why not, else ``None``), ``kernel`` (active kernel
    name: avx512 / avx2 / neon / reference), ``kernels`` (all usable kernels),
    ``cpu_features`` (list of str) and ``threads`` (int).
    """
    mod = load_kernels()
    if mod is None:
        return {
            "available": False,
            "reason": _reason,
            "kernel": None,
            "kernels": [],
            "cpu_features": [],
            "threads": 0,
        }
    return {
        "available": True,
        "reason": None,
        "kernel": mod.kernel_name(),
        "kernels": list(mod.available_kernels()),
        "cpu_features": list(mod.cpu_features()),
        "threads": int(mod.get_num_threads()),
    }
