"""Batches of images with a journal, so an interrupted batch resumes where it stopped (the
command line). A batch runs its items as the window's queue model does
(:class:`~.queue.JobQueue` and :class:`~.queue.QueueRunner`), on the calling thread.

The journal, ``.bimacosr-journal.json`` in the output folder (with outputs next to the
inputs: in the first input folder, or the folder of the first input file), records every
item: input, output file, state (``pending``/``done``/``failed``/``skipped``) and error. It is
rewritten atomically on every state change, so after Ctrl+C, a crash or a power loss it is
the state before or after the last change, never a mix. Each entry also records the settings
that decide its output (output folder, scale, format, quality, metadata, naming, seed,
``on_exists``); a later run resumes the entries whose settings are the same:

* output files are planned before any work, with the ``on_exists`` policy already applied
  ("rename": a name that is free; "skip": the item is skipped), so for those policies a
  planned output that exists on resume can only be the interrupted run's own complete
  (atomically written) file: the item is marked done, not redone, and never written twice;
* items done earlier are reported as skipped ("already done") while their output exists;
  failed and skipped items are tried again;
* our own stale temporary files (``.<output name>.<8 hex>.part``, left by a killed write)
  are deleted.

An entry with other settings is planned afresh; entries of inputs not in the run are kept.
One batch per output folder at a time. One bad file never stops the batch: its item is
``failed`` with the message, and the next item runs.

Folder inputs are scanned for images (``image_io.is_image_path``; hidden files skipped),
recursively on request, mirroring the folder tree under the output folder. Files that look
like our own outputs (the naming template applied to another image in the same folder, with
an optional `` (n)`` suffix) are left out, so re-running on a folder never upscales outputs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import string
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..atomic import temp_name_pattern
from ..image_io import ImageIOError, ImageWriteError, atomic_write_bytes, is_image_path, probe_image
from ..image_io.formats import format_from_suffix
from .queue import JobOutcome, JobQueue, QueueItem, QueueRunner, Status
from .request import Progress, UpscaleRequest, UpscaleResult, free_name, output_format, output_path
from .run import run_request

__all__ = ["JOURNAL_NAME", "Batch", "InputError", "plan_batch"]

JOURNAL_NAME = ".bimacosr-journal.json"
_JOURNAL_FORMAT = "bimacosr-journal"
_JOURNAL_VERSION = 1
#: Request fields that decide what an item produces; its entry is resumed only when equal.
_KEY_FIELDS = ("scale", "format", "quality", "strip_metadata", "on_exists", "naming", "seed")


class InputError(ValueError):
    """The batch inputs are unusable: a path that does not exist, or no images found."""


@dataclass
class _Item:
    request: UpscaleRequest  #: output: the planned file
    settings: dict[str, Any]  #: what decides the output (see _settings)
    state: str = "pending"
    error: str | None = None


def _settings(request: UpscaleRequest) -> dict[str, Any]:
    """The journal key of a request as given to the batch (output: its folder, or None)."""
    folder = None if request.output is None else str(request.output.absolute())
    return {"output_folder": folder, **{name: getattr(request, name) for name in _KEY_FIELDS}}


def plan_batch(
    inputs: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str] | None = None,
    *,
    recursive: bool = False,
    **options: Any,
) -> Batch:
    """A batch for files and folders.

    Args:
        inputs: image files (taken as given, whatever their suffix) and folders (scanned).
        output_dir: where outputs go, folder trees mirrored below it; ``None``: next to each
            input.
        recursive: scan folders recursively.
        **options: :class:`UpscaleRequest` fields other than ``input`` and ``output``.

    Raises:
        InputError: an input does not exist, or no image was found.
        ValueError: invalid options.
    """
    out = Path(output_dir) if output_dir is not None else None
    template = UpscaleRequest(Path("."), **options)  # validates the options once
    found = _scan([Path(p) for p in inputs], recursive, out, template.naming)
    requests = [
        replace(template, input=file, output=None if out is None else out / rel_folder)
        for file, rel_folder in found
    ]
    first = Path(inputs[0])
    journal_dir = out if out is not None else (first if first.is_dir() else first.parent)
    return Batch(requests, journal_dir / JOURNAL_NAME)


class Batch:
    """Requests run one after another, recorded in a journal (see the module docstring).

    ``requests`` carry their output *folder* (or ``None``: next to the input); the file
    names are planned by :meth:`run`.
    """

    def __init__(self, requests: Sequence[UpscaleRequest], journal_path: str | os.PathLike[str]):
        self.requests = list(requests)
        self.journal_path = Path(journal_path)
        #: Why the journal could not be written (the batch then runs without resume), or None.
        self.journal_error: str | None = None
        self._items: list[_Item] = []
        self._foreign: list[dict[str, Any]] = []  # journal entries of inputs not in this run

    def run(
        self,
        backend,
        *,
        progress: Callable[[int, int, UpscaleRequest, Progress], None] | None = None,
        on_result: Callable[[int, int, UpscaleResult], None] | None = None,
        total_progress: Callable[[float, float | None], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[UpscaleResult]:
        """Run (or resume) the batch; returns one result per request, in order, up to a
        cancellation (the cancelled item is the last result; later items stay pending).

        The items run as a :class:`~.queue.JobQueue` driven by a :class:`~.queue.QueueRunner`,
        the window's queue model, on this thread. ``progress(index, total, request,
        Progress)`` reports the current image, ``on_result(index, total, result)`` each
        finished one, ``total_progress(fraction, eta)`` the whole batch (weighed by input
        pixels; the ETA from the speed of the images done so far, ``None`` before the first).
        ``KeyboardInterrupt`` propagates with the journal consistent (the current item stays
        pending).
        """
        self._prepare()
        queue = JobQueue()
        queue.extend([QueueItem(input=item.request.input, scale=item.request.scale,
                                in_size=_header_size(item.request.input))
                      for item in self._items])
        index_of = {queued.id: index for index, queued in enumerate(queue.items())}
        results: list[UpscaleResult] = []
        speed = _Speed()

        def work(queued: QueueItem, report: Callable[[float, float | None], None],
                 cancel: threading.Event) -> JobOutcome:
            index = index_of[queued.id]
            item = self._items[index]

            def on_tile(p: Progress) -> None:
                report(p.fraction, p.eta_s)
                if progress is not None:
                    progress(index, len(self._items), item.request, p)

            result = self._run_item(item, backend, on_tile, cancel)
            results.append(result)
            if result.status == "done":
                speed.add(result.seconds, queued.in_size)
                for waiting in queue.items():
                    if waiting.status is Status.QUEUED:
                        waiting.estimate = speed.estimate(waiting.in_size)
            if on_result is not None:
                on_result(index, len(self._items), result)
            return JobOutcome.from_result(result)

        executor = _InlineExecutor(work, cancel or threading.Event())
        runner = QueueRunner(queue, executor,
                             total_progress=total_progress or (lambda _f, _eta: None))
        executor.run(runner)
        return results

    # -- planning and resuming ---------------------------------------------------------------

    def _prepare(self) -> None:
        old = self._load_journal()
        taken: set[Path] = set()
        self._items = []
        for request in self.requests:
            entry = old.pop(str(request.input.absolute()), None)
            same = entry is not None and entry.get("settings") == _settings(request)
            item = self._resume(request, entry) if same else None
            if item is None:
                item = self._plan(request, taken)
            if item.request.output is not None:
                taken.add(item.request.output)
                _remove_stale_parts(item.request.output)
            self._items.append(item)
        self._foreign = list(old.values())
        _remove_stale_parts(self.journal_path)
        self._save()

    def _resume(self, request: UpscaleRequest, entry: dict[str, Any]) -> _Item | None:
        """The item from its journal entry, or ``None`` to plan it afresh."""
        planned = Path(entry["output"]) if entry.get("output") else None
        state = entry.get("state")
        if planned is None or state not in ("pending", "done"):
            return None  # failed or skipped: try again
        item = _Item(replace(request, output=planned), _settings(request), state)
        if state == "pending" and planned.exists() and request.on_exists != "overwrite":
            item.state = "done"  # written by the interrupted run, just before it stopped
        if item.state == "done" and not planned.exists():
            item.state = "pending"  # the user removed it: make it again
        return item

    def _plan(self, request: UpscaleRequest, taken: set[Path]) -> _Item:
        """Plan the output file of a new item, applying ``on_exists`` now."""
        try:
            input_format: str | None = probe_image(request.input).format
        except ImageIOError:
            input_format = format_from_suffix(request.input)  # it will fail with its message
        target = output_path(request, output_format(request, input_format))
        if target in taken:  # two inputs, one name: never let them overwrite each other
            target = free_name(target, taken)
        elif target.exists():
            if request.on_exists == "skip":
                return _Item(replace(request, output=target), _settings(request), "skipped",
                             "the output file already exists")
            if request.on_exists == "rename":
                target = free_name(target, taken)
        return _Item(replace(request, output=target), _settings(request))

    # -- running -----------------------------------------------------------------------------

    def _run_item(self, item: _Item, backend, progress: Callable[[Progress], None],
                  cancel: threading.Event) -> UpscaleResult:
        request = item.request
        if item.state == "done":
            return UpscaleResult(request.input, request.output, "skipped",
                                 "already done in an earlier run")
        if item.state == "skipped":
            return UpscaleResult(request.input, request.output, "skipped", item.error)

        result = run_request(request, backend, progress, cancel)
        if result.status == "cancelled":
            return result
        item.state = result.status  # done, skipped or failed
        item.error = result.error
        if result.output is not None:
            item.request = replace(request, output=result.output)
        self._save()
        return result

    # -- the journal file --------------------------------------------------------------------

    def _load_journal(self) -> dict[str, dict[str, Any]]:
        """The journal's entries by input path; ``{}`` when there is none or it is not ours."""
        try:
            data = json.loads(self.journal_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if (
            not isinstance(data, dict)
            or data.get("format") != _JOURNAL_FORMAT
            or not isinstance(data.get("items"), list)
        ):
            return {}
        return {e["input"]: e for e in data["items"] if isinstance(e, dict) and "input" in e}

    def _save(self) -> None:
        entries = [
            {
                "input": str(item.request.input.absolute()),
                "output": None if item.request.output is None
                else str(item.request.output.absolute()),
                "state": item.state,
                "error": item.error,
                "settings": item.settings,
            }
            for item in self._items
        ]
        data = {
            "format": _JOURNAL_FORMAT,
            "version": _JOURNAL_VERSION,
            "items": entries + self._foreign,
        }
        try:
            self.journal_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.journal_path, json.dumps(data, indent=1).encode("utf-8"))
        except (ImageWriteError, OSError) as exc:
            self.journal_error = str(exc)


def _remove_stale_parts(path: Path) -> None:
    """Delete ``.<name>.<8 hex>.part`` files left next to ``path`` by a killed atomic write."""
    pattern = re.compile(temp_name_pattern(path))
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        if pattern.fullmatch(name):
            with contextlib.suppress(OSError):
                os.unlink(path.parent / name)


class _InlineExecutor:
    """The runner's executor on the command line: each submitted item runs on the calling
    thread, one after another, until the batch ends (:meth:`run`). A cancel ends the batch:
    after a cancelled job the items still queued are cancelled too. Exceptions
    (``KeyboardInterrupt``) propagate with the item still running."""

    def __init__(self, work: Callable[..., JobOutcome], cancel: threading.Event) -> None:
        self._work = work  #: work(item, progress(fraction, eta), cancel) -> JobOutcome
        self._cancel = cancel
        self._submitted: QueueItem | None = None

    def submit(self, item: QueueItem) -> None:
        self._submitted = item

    def cancel_current(self) -> None:
        self._cancel.set()

    def run(self, runner: QueueRunner) -> None:
        """Start ``runner`` and run the jobs it submits until it stops."""
        runner.start()
        while self._submitted is not None:
            item, self._submitted = self._submitted, None
            outcome = self._work(
                item, functools.partial(runner.on_progress, item.id),
                self._cancel)
            if outcome.status is Status.CANCELLED:
                runner.cancel_all()
            runner.on_done(item.id, outcome)


class _Speed:
    """Seconds per input pixel of the images done so far in this run."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.pixels = 0

    def add(self, seconds: float, size: tuple[int, int] | None) -> None:
        if size is not None:
            self.seconds += seconds
            self.pixels += size[0] * size[1]

    def estimate(self, size: tuple[int, int] | None) -> float | None:
        if size is None or not self.pixels:
            return None
        return self.seconds / self.pixels * size[0] * size[1]


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image's header, ``None`` when it cannot be read (the job
    will say why)."""
    try:
        info = probe_image(path)
    except ImageIOError:
        return None
    return info.width, info.height


# -- scanning ----------------------------------------------------------------------------------


def _scan(
    paths: Sequence[Path], recursive: bool, output_dir: Path | None, naming: str
) -> list[tuple[Path, Path]]:
    """(file, folder relative to the output folder) for every input, de-duplicated."""
    if not paths:
        raise InputError("no input given")
    found: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    skip = output_dir.resolve() if output_dir is not None else None
    for path in paths:
        if not path.exists():
            raise InputError(f"'{path}' does not exist")
        if path.is_dir():
            files = _walk(path, recursive, skip)
            files = _without_our_outputs(files, naming)
            pairs = [(f, f.parent.relative_to(path)) for f in files]
        else:
            pairs = [(path, Path("."))]
        for file, rel in pairs:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                found.append((file, rel))
    if not found:
        raise InputError(
            "no images found in " + ", ".join(f"'{p}'" for p in paths)
            + ("" if recursive else " (use --recursive for sub-folders)")
        )
    return found


def _walk(folder: Path, recursive: bool, skip: Path | None) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(
            d for d in dirs
            if recursive and not d.startswith(".") and (Path(root, d).resolve() != skip)
        )
        files.extend(Path(root, n) for n in sorted(names) if is_image_path(n))
    return files


def _output_pattern(naming: str) -> re.Pattern[str]:
    """Regex matching names the template makes; group ``stem`` is the source's stem."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(naming):
        parts.append(re.escape(literal))
        if field == "stem":
            parts.append("(?P<stem>.+)" if "(?P<stem>" not in "".join(parts) else "(?P=stem)")
        elif field == "scale":
            parts.append("[234]")
        elif field == "ext":
            parts.append("(?:png|jpg|webp|tiff)")
    return re.compile("".join(parts))


def _without_our_outputs(files: list[Path], naming: str) -> list[Path]:
    """Drop files named like the output of another image in the same folder."""
    pattern = _output_pattern(naming)
    stems = {(f.parent, f.stem) for f in files}
    kept = []
    for f in files:
        name = re.sub(r" \(\d+\)(\.[^.]*)$", r"\1", f.name)  # free_name's " (n)"
        match = pattern.fullmatch(name)
        if match and "stem" in match.groupdict() and (f.parent, match["stem"]) in stems:
            continue
        kept.append(f)
    return kept
