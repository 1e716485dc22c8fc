"""Packed checkpoint format: specification (``format.py``), export and validated loading.

Names load on first use: the specification and the reader (``format``, ``load``, ``bitpack``)
import without torch, so the CPU runtime reads checkpoints without it; the writers
(``export``) and ``PackedCheckpoint.to_model`` import torch.
"""

from importlib import import_module

# name -> submodule that defines it
_EXPORTS = {
    **dict.fromkeys(("export_fp32", "export_packed"), ".export"),
    **dict.fromkeys(("FORMAT_NAME", "FORMAT_VERSION", "CheckpointError", "expected_tensors",
                     "fp32_parameter_count"), ".format"),
    **dict.fromkeys(("PackedCheckpoint", "load_packed"), ".load"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
