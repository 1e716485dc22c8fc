"""Inference engine: backend selection and execution."""

from .backends import (
    Backend,
    available_backends,
    default_checkpoint_path,
    register_backend,
    registered_backends,
    select_backend,
)

__all__ = [
    "Backend",
    "available_backends",
    "default_checkpoint_path",
    "register_backend",
    "registered_backends",
    "select_backend",
]
