"""Inference engine: backend selection and execution."""

from .backends import (
    Backend,
    available_backends,
    default_checkpoint_path,
    register_backend,
    registered_backends,
    select_backend,
    unavailable_reason,
)
from .probe import cuda_status

__all__ = [
    "Backend",
    "available_backends",
    "cuda_status",
    "default_checkpoint_path",
    "register_backend",
    "registered_backends",
    "select_backend",
    "unavailable_reason",
]
