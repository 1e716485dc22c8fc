"""Engine backends: one interface to upscale one LR tile with a packed checkpoint.

Contract (every backend): ``upscale(lr01, top, left, seed)`` takes ``lr01`` (1,3,h,w) float32
in [0,1] on the CPU, a NumPy array or a torch tensor, the tile's absolute LR position (top,
left) (both multiples of ``required_multiple`` for tiles that must agree with the whole image)
and a seed, and returns (1,3,4h,4w) float32 in [0,1] on the CPU, of the same kind as
``lr01`` (subclasses implement ``_upscale`` on NumPy arrays). Noise depends only on (seed,
absolute position) (model/noise.py), so equal inputs give equal outputs. ``device`` names
where the backend runs (``str(device)``: "cpu", "cuda:0"). Backends hold no Qt and no file
state beyond their checkpoint.

Registry: a backend subclasses :class:`Backend`, sets ``name``, takes
``(checkpoint: PackedCheckpoint, device)`` in its constructor, overrides
``unavailable_reason()`` (why it cannot run here: no torch, kernels not built; "" when it can)
and ``default_device()`` if needed, and is decorated with :func:`register_backend`. Backends in
other modules of this package (listed in ``_PLUGINS``) register when their module is first
imported, which happens when their name is first asked about (:func:`available_backends`,
:func:`select_backend`); a plug-in whose module imports torch (``cuda``) has a torch-free
probe in ``_PROBES`` that answers for it until it is built. ``reference`` (pure torch,
float32, any device) is the parity oracle for the others, offered where torch is installed;
``cpu-packed`` (engine/cpu_packed.py) needs no torch.

No torch at import, and none to list the backends: this module, the registry and
``cpu-packed`` run without it; whether ``reference`` and ``cuda`` can run is found without
importing it (:mod:`.probe`), and they import it when they are built. So listing backends
(``info``, the window) and ``auto`` on a machine without a GPU never import torch.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np

from ..bundled import bundled_path
from ..checkpoint.load import PackedCheckpoint, load_packed
from ..model.config import SCALE
from .probe import cuda_status, torch_installed, torch_missing_reason

__all__ = [
    "Backend",
    "ReferenceBackend",
    "available_backends",
    "default_checkpoint_path",
    "register_backend",
    "registered_backends",
    "select_backend",
    "unavailable_reason",
]

MODEL_RELPATH = Path("models") / "bimacosr-x4.safetensors"  #: below resources/ (bundled.py)
# Backends of other modules of this package (they register when imported): name -> module,
# imported on first use of that name only.
_PLUGINS = {"cpu-packed": "bimacosr_app.engine.cpu_packed", "cuda": "bimacosr_app.engine.cuda"}
# Plug-ins whose module imports torch: why they cannot run here ("" when they can), asked
# without importing the module (engine/probe.py), so that listing backends imports no torch.
_PROBES = {"cuda": lambda: cuda_status().reason}
# "auto" takes the first of these that is registered and available, else "reference".
_AUTO_ORDER = ("cuda", "cpu-packed")

_registry: dict[str, type[Backend]] = {}


class Backend:
    """Base class. Subclasses set ``name``, implement ``_upscale`` and, when they need
    hardware, torch or compiled code, ``unavailable_reason``."""

    name: str = ""
    scale: int = SCALE

    def __init__(self, checkpoint: PackedCheckpoint, device):
        self.checkpoint = checkpoint
        self.device = device

    @classmethod
    def unavailable_reason(cls) -> str:
        """Why this backend cannot run on this machine, completing "needs ..." (what is
        missing and how to get it); "" when it can."""
        return ""

    @classmethod
    def is_available(cls) -> bool:
        """Whether this backend can run on this machine."""
        return not cls.unavailable_reason()

    @classmethod
    def default_device(cls):
        return "cpu"

    @property
    def required_multiple(self) -> int:
        """LR pixels; tile origins must be multiples of it (windows and downsampling)."""
        return self.checkpoint.architecture.required_multiple

    def upscale(self, lr01, top: int = 0, left: int = 0, seed: int = 0):
        """(1,3,h,w) float32 in [0,1] at LR (top, left) -> (1,3,4h,4w) float32 in [0,1]; a
        NumPy array for a NumPy array, a torch tensor for a torch tensor (module docstring)."""
        torch = sys.modules.get("torch")  # a tensor can only come from a loaded torch
        as_tensor = torch is not None and isinstance(lr01, torch.Tensor)
        lr = np.asarray(lr01.detach().cpu() if as_tensor else lr01)
        if lr.ndim != 4 or lr.shape[0] != 1 or lr.shape[1] != 3:
            raise ValueError(f"expected a (1,3,h,w) tile, got {tuple(lr.shape)}")
        hr = self._upscale(np.ascontiguousarray(lr, dtype=np.float32), top, left, seed)
        return torch.from_numpy(hr) if as_tensor else hr

    def _upscale(self, lr01: np.ndarray, top: int, left: int, seed: int) -> np.ndarray:
        """``upscale`` on a C-contiguous float32 NumPy array (1,3,h,w)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, device={self.device}, "
                f"checkpoint={self.checkpoint.content_sha256[:12]})")


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make ``cls`` selectable by ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _registry[cls.name] = cls
    return cls


@register_backend
class ReferenceBackend(Backend):
    """Pure torch float32 on any device: ``upscale_tile`` on ``checkpoint.to_model()``."""

    name = "reference"

    @classmethod
    def unavailable_reason(cls) -> str:
        return "" if torch_installed() else torch_missing_reason()

    def __init__(self, checkpoint: PackedCheckpoint, device):
        import torch

        super().__init__(checkpoint, torch.device(device))
        self.model = checkpoint.to_model(self.device)
        self.schedule = checkpoint.schedule()

    def _upscale(self, lr01, top, left, seed):
        import torch

        from ..model.pipeline import upscale_tile

        with torch.inference_mode():
            hr = upscale_tile(self.model, self.schedule, torch.from_numpy(lr01).to(self.device),
                              seed=seed, top=top, left=left)
        return hr.cpu().numpy()


def _backend_class(name: str) -> type[Backend] | None:
    """The class registered as ``name``, importing its plug-in module first; None for an
    unknown name or a plug-in that cannot import here (it is then simply not offered)."""
    if name not in _registry and name in _PLUGINS:
        try:
            importlib.import_module(_PLUGINS[name])
        except ImportError:
            return None
    return _registry.get(name)


def unavailable_reason(name: str) -> str:
    """Why backend ``name`` cannot run on this machine, completing "needs ..." (what is
    missing and how to get it); "" when it can. Imports no torch: a plug-in with a probe
    (``cuda``) is answered by it, ``reference`` by finding torch without importing it."""
    if name in _PROBES:
        return _PROBES[name]()
    return _class_reason(name)


def _class_reason(name: str) -> str:
    """``unavailable_reason`` as the backend's class answers it (importing its module)."""
    cls = _backend_class(name)
    if cls is None:
        if name in _PLUGINS:
            return f"its module {_PLUGINS[name]}, which cannot be imported here"
        return f"to be registered (unknown backend {name!r})"
    return cls.unavailable_reason()


def _usable(name: str) -> bool:
    return not unavailable_reason(name)


def registered_backends() -> list[str]:
    """Names of all known backends, available here or not (plug-ins without importing them)."""
    return list(dict.fromkeys([*_registry, *_PLUGINS]))


def available_backends() -> list[str]:
    """Names of the backends usable on this machine, in auto-selection preference order
    (imports the plug-ins that need no torch; torch is never imported)."""
    usable = [n for n in registered_backends() if _usable(n)]
    preferred = [n for n in _AUTO_ORDER if n in usable]
    return preferred + [n for n in usable if n not in preferred]


def default_checkpoint_path() -> Path:
    """The bundled model (:func:`bimacosr_app.bundled.bundled_path`)."""
    return bundled_path(MODEL_RELPATH)


def select_backend(name: str = "auto",
                   checkpoint: PackedCheckpoint | str | Path | None = None,
                   device=None) -> Backend:
    """A ready backend. ``name``: "auto" (cuda if CUDA works, else cpu-packed if its kernels
    load, else reference) or a registered name.
    ``checkpoint``: a loaded checkpoint or a path (default: the bundled model).
    ``device`` (a name such as "cpu", "cuda:0", or a torch.device): defaults to the backend's
    own (cuda:0 for cuda, cpu otherwise).

    Raises ValueError for an unknown name, RuntimeError for one unavailable here, and
    CheckpointError for a bad checkpoint file.
    """
    if name == "auto":
        name = next((n for n in _AUTO_ORDER if _usable(n)), "reference")
    known = registered_backends()
    if name not in known:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(['auto', *known])}")
    # a probe's "yes" is confirmed by the class itself (torch asked, for cuda)
    reason = unavailable_reason(name) or (_class_reason(name) if name in _PROBES else "")
    if reason:
        raise RuntimeError(f"backend {name!r} is not available on this machine: it needs "
                           f"{reason}")
    if not isinstance(checkpoint, PackedCheckpoint):
        checkpoint = load_packed(default_checkpoint_path() if checkpoint is None else checkpoint)
    cls = _backend_class(name)
    return cls(checkpoint, device if device is not None else cls.default_device())
