"""Engine backends: one interface to upscale one LR tile with a packed checkpoint.

Contract (every backend): ``upscale(lr01, top, left, seed)`` takes ``lr01`` (1,3,h,w) float32
on the CPU in [0,1], the tile's absolute LR position (top, left) (both multiples of
``required_multiple`` for tiles that must agree with the whole image) and a seed, and returns
(1,3,4h,4w) float32 on the CPU in [0,1]. Noise depends only on (seed, absolute position)
(model/noise.py), so equal inputs give equal outputs. Backends hold no Qt and no file state
beyond their checkpoint.

Registry: a backend subclasses :class:`Backend`, sets ``name``, takes
``(checkpoint: PackedCheckpoint, device: torch.device)`` in its constructor, overrides
``is_available()`` (can it run here: CUDA present, kernels load) and ``default_device()`` if
needed, and is decorated with :func:`register_backend`. Backends in other modules of this
package register when their module (listed in ``_PLUGIN_MODULES``) is first imported by
:func:`registered_backends` / :func:`available_backends` / :func:`select_backend`.
``reference`` (pure torch, float32, any device) is always there and is the parity oracle for
the others.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from ..bundled import bundled_path
from ..checkpoint import PackedCheckpoint, load_packed
from ..model.latent import SCALE
from ..model.pipeline import upscale_tile

__all__ = [
    "Backend",
    "ReferenceBackend",
    "available_backends",
    "default_checkpoint_path",
    "register_backend",
    "registered_backends",
    "select_backend",
]

MODEL_RELPATH = Path("models") / "bimacosr-x4.safetensors"  #: below resources/ (bundled.py)
# Modules of this package that define (and register) further backends, imported lazily.
_PLUGIN_MODULES = ("bimacosr_app.engine.cpu_packed", "bimacosr_app.engine.cuda")
# "auto" takes the first of these that is registered and available, else "reference".
_AUTO_ORDER = ("cuda", "cpu-packed")

_registry: dict[str, type[Backend]] = {}
_plugins_loaded = False


class Backend:
    """Base class. Subclasses set ``name``, implement ``upscale`` and, when they need
    hardware or compiled code, ``is_available``."""

    name: str = ""
    scale: int = SCALE

    def __init__(self, checkpoint: PackedCheckpoint, device: torch.device):
        self.checkpoint = checkpoint
        self.device = device

    @classmethod
    def is_available(cls) -> bool:
        """Whether this backend can run on this machine."""
        return True

    @classmethod
    def default_device(cls) -> torch.device:
        return torch.device("cpu")

    @property
    def required_multiple(self) -> int:
        """LR pixels; tile origins must be multiples of it (windows and downsampling)."""
        return self.checkpoint.architecture.required_multiple

    def upscale(self, lr01: torch.Tensor, top: int = 0, left: int = 0,
                seed: int = 0) -> torch.Tensor:
        """(1,3,h,w) float32 CPU in [0,1] at LR (top, left) -> (1,3,4h,4w) float32 CPU."""
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


def _check_tile(lr01: torch.Tensor) -> torch.Tensor:
    if lr01.dim() != 4 or lr01.shape[0] != 1 or lr01.shape[1] != 3:
        raise ValueError(f"expected a (1,3,h,w) tile, got {tuple(lr01.shape)}")
    return lr01.to(torch.float32)


@register_backend
class ReferenceBackend(Backend):
    """Pure torch float32 on any device: ``upscale_tile`` on ``checkpoint.to_model()``."""

    name = "reference"

    def __init__(self, checkpoint: PackedCheckpoint, device: torch.device):
        super().__init__(checkpoint, device)
        self.model = checkpoint.to_model(device)
        self.schedule = checkpoint.schedule()

    def upscale(self, lr01, top=0, left=0, seed=0):
        lr01 = _check_tile(lr01).to(self.device)
        with torch.inference_mode():
            hr = upscale_tile(self.model, self.schedule, lr01, seed=seed, top=top, left=left)
        return hr.cpu()


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in _PLUGIN_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:  # a plug-in that cannot import here is simply not offered
            continue


def registered_backends() -> list[str]:
    """Names of all registered backends, available here or not."""
    _load_plugins()
    return list(_registry)


def available_backends() -> list[str]:
    """Names of the backends usable on this machine, in auto-selection preference order."""
    _load_plugins()
    usable = [n for n, cls in _registry.items() if cls.is_available()]
    preferred = [n for n in _AUTO_ORDER if n in usable]
    return preferred + [n for n in usable if n not in preferred]


def default_checkpoint_path() -> Path:
    """The bundled model (:func:`bimacosr_app.bundled.bundled_path`)."""
    return bundled_path(MODEL_RELPATH)


def select_backend(name: str = "auto",
                   checkpoint: PackedCheckpoint | str | Path | None = None,
                   device: torch.device | str | None = None) -> Backend:
    """A ready backend. ``name``: "auto" (cuda if CUDA works and a cuda backend is registered,
    else cpu-packed if its kernels load, else reference) or a registered name.
    ``checkpoint``: a loaded checkpoint or a path (default: the bundled model).
    ``device``: defaults to the backend's own (cuda:0 for cuda, cpu otherwise).

    Raises ValueError for an unknown name, RuntimeError for one unavailable here, and
    CheckpointError for a bad checkpoint file.
    """
    _load_plugins()
    if name == "auto":
        name = next((n for n in _AUTO_ORDER
                     if n in _registry and _registry[n].is_available()), "reference")
    if name not in _registry:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(['auto', *_registry])}")
    cls = _registry[name]
    if not cls.is_available():
        raise RuntimeError(f"backend {name!r} is not available on this machine")
    if not isinstance(checkpoint, PackedCheckpoint):
        checkpoint = load_packed(default_checkpoint_path() if checkpoint is None else checkpoint)
    return cls(checkpoint, torch.device(device) if device is not None else cls.default_device())
