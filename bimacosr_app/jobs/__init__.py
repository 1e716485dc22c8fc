"""Upscale jobs: one request end to end, and journaled batches (no Qt here).

:func:`run_request` is the one place that chains ``image_io`` -> ``tiling`` -> ``engine`` ->
``tiling`` -> ``image_io`` for an :class:`UpscaleRequest`; :func:`plan_batch` /
:class:`Batch` run many with a resumable journal. The CLI and the GUI's worker both drive
these, and :mod:`.options` is the one schema of their options.
"""

from .batch import JOURNAL_NAME, Batch, InputError, plan_batch
from .options import BATCH_OPTIONS, JOB_OPTIONS, OPTIONS, WINDOW_OPTIONS, Option, option
from .request import (
    DEFAULT_NAMING,
    ON_EXISTS,
    Progress,
    UpscaleRequest,
    UpscaleResult,
)
from .run import run_request

__all__ = [
    "BATCH_OPTIONS",
    "DEFAULT_NAMING",
    "JOB_OPTIONS",
    "JOURNAL_NAME",
    "ON_EXISTS",
    "OPTIONS",
    "WINDOW_OPTIONS",
    "Batch",
    "InputError",
    "Option",
    "Progress",
    "UpscaleRequest",
    "UpscaleResult",
    "option",
    "plan_batch",
    "run_request",
]
