"""Packed checkpoint format: specification (``format.py``), export and validated loading."""

from .export import export_fp32, export_packed
from .format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    CheckpointError,
    expected_tensors,
    fp32_parameter_count,
)
from .load import PackedCheckpoint, load_packed

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CheckpointError",
    "PackedCheckpoint",
    "expected_tensors",
    "export_fp32",
    "export_packed",
    "fp32_parameter_count",
    "load_packed",
]
