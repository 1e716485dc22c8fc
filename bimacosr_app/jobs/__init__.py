"""Upscale jobs: one request end to end, and journaled batches (no Qt here).

:func:`run_request` is the one place that chains ``image_io`` -> ``tiling`` -> ``engine`` ->
``tiling`` -> ``image_io`` for an :class:`UpscaleRequest`; :func:`plan_batch` /
:class:`Batch` run many with a resumable journal. The CLI and the GUI's worker both drive
these.
"""

from .batch import JOURNAL_NAME, Batch, InputError, plan_batch
from .request import (
    DEFAULT_NAMING,
    ON_EXISTS,
    Progress,
    UpscaleRequest,
    UpscaleResult,
)
from .run import run_request

__all__ = [
    "DEFAULT_NAMING",
    "JOURNAL_NAME",
    "ON_EXISTS",
    "Batch",
    "InputError",
    "Progress",
    "UpscaleRequest",
    "UpscaleResult",
    "plan_batch",
    "run_request",
]
