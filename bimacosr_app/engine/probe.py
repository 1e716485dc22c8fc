"""What the torch backends need, found without importing torch.

The app's own install has no torch (the ``cpu-packed`` backend runs on NumPy and the compiled
kernels); torch comes with the ``[cuda]``, ``[train]`` and ``[dev]`` extras, and importing it
costs seconds and hundreds of MB. So listing the backends (``bimacosr info``, the window's
settings, ``auto``) asks here, and only a backend that is built imports torch:

* torch installed: ``importlib.util.find_spec("torch")`` (finds the package, runs none of it);
* built with CUDA: the ``cuda`` value of the installed ``torch/version.py``, read as text;
* an NVIDIA GPU with a working driver: the CUDA driver API (``libcuda.so.1``, ``nvcuda.dll``)
  through ctypes: ``cuInit``, the device count (which honours ``CUDA_VISIBLE_DEVICES``) and
  the first device's name, memory and compute capability.

Where torch is already imported, its own answers are used. :func:`cuda_status` says what is
missing and how to get it (the CLI's ``--device cuda``, ``info``, the window's settings).
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import importlib.util
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["CUDA_EXTRA_HINT", "CudaDevice", "CudaStatus", "cuda_status", "torch_cuda_build",
           "torch_installed", "torch_missing_reason"]

#: how to get the CUDA backend's PyTorch (the package's ``[cuda]`` extra)
PIP_CUDA_EXTRA = "pip install 'bimacosr-upscaler[cuda]'"
CUDA_EXTRA_HINT = f"{PIP_CUDA_EXTRA}; in a source checkout: .venv/bin/pip install -e '.[cuda]'"
TORCH_CUDA_URL = "https://pytorch.org/get-started/locally/"
DRIVER_URL = "https://www.nvidia.com/Download/index.aspx"
_CC_MAJOR, _CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR


@dataclass(frozen=True)
class CudaDevice:
    name: str
    memory_bytes: int
    capability: str  #: "major.minor"
    devices: int  #: visible devices (this is the first)

    def to_dict(self) -> dict:
        return {"name": self.name, "memory_bytes": self.memory_bytes,
                "capability": self.capability, "devices": self.devices}


@dataclass(frozen=True)
class CudaStatus:
    """Whether the ``cuda`` backend can run here. ``reason`` ("" when it can) completes
    "the CUDA backend needs ...": what is missing and how to get it."""

    reason: str
    device: CudaDevice | None  #: the first visible GPU, when the driver finds one
    torch_version: str | None  #: installed PyTorch, None without it
    torch_cuda: str | None  #: the CUDA version that PyTorch is built for; None: CPU only

    @property
    def available(self) -> bool:
        return not self.reason


def torch_installed() -> bool:
    """Whether ``import torch`` would find a package (without importing it; a torch blocked
    by ``sys.modules["torch"] = None`` counts as missing)."""
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def torch_missing_reason(what: str = "PyTorch") -> str:
    """Completes "needs ..." for a backend that needs PyTorch, where it is not installed."""
    if _frozen():
        return (f"{what} (this build of the app leaves it out and runs on the CPU; the Python "
                f"package has it as an extra: {PIP_CUDA_EXTRA})")
    return f"{what} (not installed here: {CUDA_EXTRA_HINT})"


def _torch_version_file() -> tuple[str | None, str | None]:
    """(``__version__``, ``cuda``) from the installed ``torch/version.py``, read as text."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None, None
    if spec is None or not spec.submodule_search_locations:
        return None, None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "version.py"
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
        values: dict[str, object] = {}
        for node in tree.body:
            target, value = None, None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            if isinstance(target, ast.Name) and target.id in ("__version__", "cuda"):
                with contextlib.suppress(ValueError):
                    values[target.id] = ast.literal_eval(value)
        version, cuda = values.get("__version__"), values.get("cuda")
        return (str(version) if version else None), (str(cuda) if cuda else None)
    return None, None


def torch_cuda_build() -> tuple[str | None, str | None]:
    """(torch version, the CUDA version it is built for or None), without importing torch;
    (None, None) when it is not installed."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return str(torch.__version__), torch.version.cuda
    if not torch_installed():
        return None, None
    return _torch_version_file()


def _driver_library() -> ctypes.CDLL | None:
    names = {"win32": ["nvcuda.dll"]}.get(sys.platform, ["libcuda.so.1", "libcuda.so"])
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _driver_error(lib: ctypes.CDLL, code: int) -> str:
    text = ctypes.c_char_p()
    try:
        if lib.cuGetErrorString(code, ctypes.byref(text)) == 0 and text.value:
            return f"{text.value.decode(errors='replace')} (error {code})"
    except AttributeError:
        pass
    return f"error {code}"


def _probe_driver() -> tuple[CudaDevice | None, str]:
    """(first visible GPU, "") or (None, what is missing) from the CUDA driver API."""
    if sys.platform == "darwin":
        return None, "an NVIDIA GPU with CUDA (macOS has none)"
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and not hidden.strip().lstrip("-").strip(","):
        return None, (f"a visible GPU (CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU from "
                      "this process: unset it or name a GPU)")
    lib = _driver_library()
    if lib is None:
        library = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
        return None, (f"an NVIDIA GPU with its driver (no NVIDIA driver is installed: {library} "
                      f"not found; {DRIVER_URL})")
    try:
        code = lib.cuInit(0)
        if code != 0:
            return None, (f"an NVIDIA GPU with a working driver (the CUDA driver reports "
                          f"{_driver_error(lib, code)}: install or update the NVIDIA driver, "
                          f"{DRIVER_URL})")
        count = ctypes.c_int(0)
        code = lib.cuDeviceGetCount(ctypes.byref(count))
        if code != 0 or count.value < 1:
            return None, "an NVIDIA GPU (the CUDA driver finds none)"
        device = ctypes.c_int(0)
        lib.cuDeviceGet(ctypes.byref(device), 0)
        name = ctypes.create_string_buffer(256)
        lib.cuDeviceGetName(name, len(name), device)
        memory = ctypes.c_size_t(0)
        lib.cuDeviceTotalMem_v2(ctypes.byref(memory), device)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        lib.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, device)
        lib.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, device)
    except AttributeError as exc:  # a driver library without the expected entry points
        return None, f"an NVIDIA GPU with a working driver (the CUDA driver lacks {exc})"
    return CudaDevice(name.value.decode(errors="replace"), int(memory.value),
                      f"{major.value}.{minor.value}", int(count.value)), ""


@lru_cache(maxsize=1)
def cuda_status() -> CudaStatus:
    """Whether the ``cuda`` backend can run here, and if not what it needs (cached: call
    ``cuda_status.cache_clear()`` to ask again)."""
    device, missing_gpu = _probe_driver()
    version, cuda = torch_cuda_build()
    missing = [missing_gpu] if missing_gpu else []
    if version is None:
        missing.append(torch_missing_reason("PyTorch with CUDA"))
    elif cuda is None:
        missing.append(f"PyTorch built with CUDA (this PyTorch, {version}, is built for the CPU "
                       f"only: install a CUDA build, {TORCH_CUDA_URL})")
    return CudaStatus(" and ".join(missing), device, version, cuda)
