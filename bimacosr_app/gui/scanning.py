"""Turning dropped, opened, pasted or command-line paths into the images to queue.

Folders are scanned by the jobs layer's batch planner, exactly as the CLI scans them: image
files by suffix, hidden ones skipped, subfolders on request, and files that look like this
app's own outputs (the naming template applied to a neighbouring image) left out, so adding
a folder twice never queues its results. Files given one by one are taken as they are (an
unreadable one fails with its reason when it runs).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Found", "ScanResult", "scan_inputs"]


@dataclass(frozen=True)
class Found:
    file: Path
    subfolder: str  #: folder of ``file`` below the scanned folder ("" at its top)


@dataclass(frozen=True)
class ScanResult:
    found: list[Found]
    problems: list[str]  #: one line per path that gave nothing


def scan_inputs(paths: Iterable[str | os.PathLike[str]], recursive: bool,
                naming: str) -> ScanResult:
    """Images among ``paths`` (folders scanned, recursively when ``recursive``), in order,
    without duplicates. ``naming``: the output naming template, to recognise our outputs."""
    from ..jobs import InputError, plan_batch  # imports torch: called off the UI thread

    found: dict[Path, Found] = {}
    problems = []
    for raw in paths:
        path = Path(raw)
        try:
            batch = plan_batch([path], recursive=recursive, naming=naming)
        except InputError:
            problems.append(f"'{path}' does not exist" if not path.exists() else
                            f"no photos in '{path}'" + ("" if recursive else
                                                        " (subfolders not included)"))
            continue
        for request in batch.requests:
            sub = request.input.parent.relative_to(path) if path.is_dir() else Path()
            file = Path(os.path.abspath(request.input))
            found.setdefault(file.resolve(), Found(file, "" if sub == Path() else sub.as_posix()))
    return ScanResult(list(found.values()), problems)
