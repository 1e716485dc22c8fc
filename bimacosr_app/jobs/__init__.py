"""Upscale jobs, the one engine room of the CLI and the window (no Qt here).

:func:`run_request` is the one place that chains ``image_io`` -> ``tiling`` -> ``engine`` ->
``tiling`` -> ``image_io`` for an :class:`UpscaleRequest`. :class:`JobQueue` and
:class:`QueueRunner` are the one queue model (items, statuses, order, progress, ETA, cancel)
that both front ends drive: the window through :class:`EngineSession` on its engine thread
with :class:`QueueStore` saving the queue, the command line through :func:`plan_batch` /
:class:`Batch`, whose journal in the output folder resumes an interrupted batch.
:mod:`.options` is the one schema of every option; :func:`analyse` checks a result against
its input. The window imports the app only
through this package (plus the image reading it shows), so it never runs a second pipeline.

Names load on first use: importing the package costs nothing, and the engine loads only when
a job or a session needs it (torch only for a backend that runs on it).
"""

from importlib import import_module

# name -> submodule that defines it (names of other packages: their module)
_EXPORTS = {
    **dict.fromkeys(("JOURNAL_NAME", "Batch", "FolderInUseError", "InputError", "plan_batch"),
                    ".batch"),
    **dict.fromkeys(("BATCH_OPTIONS", "JOB_OPTIONS", "OPTIONS", "WINDOW_OPTIONS", "Option",
                     "naming_problem", "option"), ".options"),
    **dict.fromkeys(("BatchSummary", "Executor", "Found", "JobOutcome", "JobQueue", "QueueItem",
                     "QueueRunner", "QueueStore", "ScanResult", "SpeedSample", "SpeedTable",
                     "Status", "TRANSIENT_FIELDS",
                     "default_queue_dir", "estimate_memory_mb", "estimate_seconds",
                     "format_duration", "scan_inputs"), ".queue"),
    **dict.fromkeys(("QualityReport", "analyse"), ".quality"),
    **dict.fromkeys(("DEFAULT_NAMING", "ON_EXISTS", "Progress", "UpscaleRequest",
                     "UpscaleResult"), ".request"),
    "run_request": ".run",
    **dict.fromkeys(("BackendFactory", "EngineFacts", "EngineSession", "Job", "ModelInfo",
                     "backend_needs", "engine_facts"), ".session"),
    # reading images as the jobs read them (the window's thumbnails and comparisons)
    **dict.fromkeys(("ImageIOError", "probe_image", "read_image", "readable_formats"),
                    "bimacosr_app.image_io"),
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
