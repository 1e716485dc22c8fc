"""Batches of images with a journal, so an interrupted batch resumes where it stopped (the
command line). A batch runs its items as the window's queue model does
(:class:`~.queue.JobQueue` and :class:`~.queue.QueueRunner`), on the calling thread.

**Where things are.** The journal and the lock (:mod:`.journal`) live in the output folder
(with outputs next to the inputs: in the first input folder, or the folder of the first input
file; with an output *file*, its folder). While a batch runs it holds the folder's lock, so a
second run on the same folder stops at once with a message (:class:`FolderInUseError`); a lock
left by a killed run is taken over. The journal records every item: input, settings, state
(``pending``/``done``/``failed``/``skipped``), output file, error, and the input and output
as they were (:class:`~.journal.FileState`: size, times, SHA-256 of the input). It is
rewritten once when the batch starts and then appended to, so after Ctrl+C, a crash or a
power loss it holds every change up to the last one or two.

**Planning.** Every output file is planned before any work (:func:`~.request.plan_output`):
never the name of an input of the batch, never one name for two inputs, and with "overwrite"
only a file this app wrote (its provenance record, or this journal's record of it, unchanged
since) or the output file named itself; another existing file is kept and the output gets a
free name, with a warning in the result.

**Resuming.** An entry with the same settings (output folder, scale, format, quality,
metadata, naming, seed, ``on_exists``) is resumed:

* done: reported as skipped ("already done") while its output exists and its input is
  unchanged (the same size and times, or else the same SHA-256); a changed input is redone,
  over its earlier output if that is still as it was written (else that is kept and the new
  output gets a name by the policy); a removed output is made again;
* pending with its output there: planned names were free (or the file to be replaced is no
  longer as it was) and the lock keeps other runs out, so the file is the interrupted run's
  own complete (atomically written) output: done, not redone, when the input is as it was
  when planned;
* failed and skipped items are tried again; our own stale temporary files
  (``.bimacosr-<8 hex>-<8 hex>.part``, left by a killed write) are deleted.

An entry with other settings is planned afresh; entries of inputs not in the run are kept.
One bad file never stops the batch: its item is ``failed`` with the message, and the next
item runs.

**Scanning.** Folder inputs are scanned for images (``image_io.is_image_path``; hidden files
skipped), recursively on request, mirroring the folder tree under the output folder. Outputs
of earlier runs are left out, so a batch never upscales its own results: a file is one when
it carries this app's provenance record (every output does, unless written with
``strip_metadata``) or when a journal found in the scanned folders lists it as an output.
Files given one by one are taken as they are. An entry that cannot be read (a symbolic link
that loops or points nowhere) becomes an item that fails with the reason.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..atomic import temp_name_pattern
from ..image_io import ImageIOError, ImageWriteError, is_image_path, probe_image
from ..image_io.formats import format_from_suffix
from .journal import JOURNAL_NAME, FileState, FolderInUseError, FolderLock, Journal
from .queue import JobOutcome, JobQueue, QueueItem, QueueRunner, SpeedSample, SpeedTable, Status
from .request import (
    Progress,
    UpscaleRequest,
    UpscaleResult,
    output_format,
    output_path,
    plan_output,
    real_path,
    written_by_this_app,
)
from .run import run_request

__all__ = ["JOURNAL_NAME", "Batch", "FolderInUseError", "InputError", "plan_batch"]

#: Request fields that decide what an item produces; its entry is resumed only when equal.
_KEY_FIELDS = ("scale", "format", "quality", "strip_metadata", "on_exists", "naming", "seed")


class InputError(ValueError):
    """The batch inputs are unusable: a path that does not exist, no images found, or an
    output that cannot be what it is asked to be (a file where a folder is needed, one output
    file for several images)."""


@dataclass
class _Item:
    request: UpscaleRequest  #: output: the planned file
    settings: dict[str, Any]  #: what decides the output (see _settings)
    state: str = "pending"
    error: str | None = None
    source: FileState | None = None  #: the input when planned, or what the output was made of
    written: FileState | None = None  #: the output as written
    replacing: FileState | None = None  #: the existing output file this item replaces
    note: str = ""  #: a warning from planning, for the result

    def entry(self) -> dict[str, Any]:
        """The item's journal entry."""
        output = self.request.output
        return {
            "input": str(self.request.input.absolute()),
            "settings": self.settings,
            "state": self.state,
            "output": None if output is None else str(output.absolute()),
            "error": self.error,
            **{name: None if state is None else state.to_json() for name, state in (
                ("source", self.source), ("written", self.written),
                ("replacing", self.replacing))},
        }


def _settings(request: UpscaleRequest) -> dict[str, Any]:
    """The journal key of a request as given to the batch (output: its folder, or None)."""
    folder = None if request.output is None else str(request.output.absolute())
    return {"output_folder": folder, **{name: getattr(request, name) for name in _KEY_FIELDS}}


def _state(path: Path, content: bool = False) -> FileState | None:
    """``FileState.of(path)``, ``None`` when it cannot be read."""
    try:
        return FileState.of(path, content)
    except OSError:
        return None


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
        output_dir: where outputs go, folder trees mirrored below it; a name with an image
            suffix that is not a folder names the output file of a single image; ``None``:
            next to each input.
        recursive: scan folders recursively.
        **options: :class:`UpscaleRequest` fields other than ``input`` and ``output``.

    Raises:
        InputError: an input does not exist, no image was found, ``output_dir`` is (below) a
            file, or it names one file for several images.
        ValueError: invalid options.
    """
    out = Path(output_dir) if output_dir is not None else None
    template = UpscaleRequest(Path("."), **options)  # validates the options once
    found = _scan([Path(p) for p in inputs], recursive, out)
    if out is not None and replace(template, output=out).output_is_file:
        _check_output_file(out, len(found))
        return Batch([replace(template, input=file, output=out) for file, _ in found],
                     out.parent / JOURNAL_NAME)
    if out is not None:
        _check_output_folder(out)
    requests = [
        replace(template, input=file, output=None if out is None else out / rel_folder)
        for file, rel_folder in found
    ]
    first = Path(inputs[0])
    journal_dir = out if out is not None else (first if first.is_dir() else first.parent)
    return Batch(requests, journal_dir / JOURNAL_NAME)


def _check_output_file(out: Path, images: int) -> None:
    if images > 1:
        raise InputError(f"the output '{out}' names one file, but there are {images} images "
                         "to upscale: give a folder for them")
    _check_output_folder(out.parent)


def _check_output_folder(out: Path) -> None:
    """InputError when ``out``, or the nearest of its folders that exists, is not a folder."""
    existing = next((p for p in (out, *out.parents) if os.path.lexists(p)), None)
    if existing is not None and not existing.is_dir():
        which = "it" if existing == out else f"'{existing}'"
        raise InputError(f"the output '{out}' is not a folder ({which} is a file)")


class Batch:
    """Requests run one after another, recorded in a journal (see the module docstring).

    ``requests`` carry their output *folder* (or ``None``: next to the input; or the output
    file of a single image); the file names are planned by :meth:`run`.
    """

    def __init__(self, requests: Sequence[UpscaleRequest], journal_path: str | os.PathLike[str]):
        self.requests = list(requests)
        self.journal_path = Path(journal_path)
        #: Why the journal could not be written (the batch then runs without resume), or None.
        self.journal_error: str | None = None
        self._journal = Journal(self.journal_path)
        self._items: list[_Item] = []

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
        pixels; the ETA from the speed of the images done so far, the latest weighing most,
        as ``jobs.SpeedTable`` keeps it: ``None`` before the first).
        ``KeyboardInterrupt`` propagates with the journal consistent (the current item stays
        pending).

        Raises:
            FolderInUseError: another run holds the output folder's lock; nothing was done.
        """
        with self._lock():
            self._prepare()
            try:
                return self._run_queue(backend, progress, on_result, total_progress, cancel)
            finally:
                self._journal.close()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """The output folder's lock; without it (and then without a journal) where the folder
        cannot be created or locked."""
        with contextlib.ExitStack() as held:
            try:
                self.journal_path.parent.mkdir(parents=True, exist_ok=True)
                held.enter_context(FolderLock(self.journal_path.parent))
            except OSError as exc:  # (FolderInUseError is no OSError: it propagates)
                self.journal_error = f"the folder cannot be locked ({exc})"
            yield

    def _run_queue(self, backend, progress, on_result, total_progress,
                   cancel) -> list[UpscaleResult]:
        queue = JobQueue()
        queue.extend([QueueItem(input=item.request.input, scale=item.request.scale,
                                in_size=_header_size(item.request.input))
                      for item in self._items])
        index_of = {queued.id: index for index, queued in enumerate(queue.items())}
        results: list[UpscaleResult] = []
        speed = SpeedTable()  # of the images done so far in this run
        last: SpeedSample | None = None  # of the last image done

        def work(queued: QueueItem, report: Callable[[float, float | None], None],
                 cancel: threading.Event) -> JobOutcome:
            nonlocal last
            index = index_of[queued.id]
            item = self._items[index]

            def on_tile(p: Progress) -> None:
                report(p.fraction, p.eta_s)
                if progress is not None:
                    progress(index, len(self._items), item.request, p)

            result = self._run_item(item, backend, on_tile, cancel)
            results.append(result)
            tiling = result.details.get("tiling")
            if result.status == "done" and tiling and queued.in_size:
                last = SpeedSample(result.backend, item.request.tile_budget_mb, tiling["tile"],
                                   result.seconds, queued.in_size[0] * queued.in_size[1] * 16)
                speed.add(last)
            if on_result is not None:
                on_result(index, len(self._items), result)
            return JobOutcome.from_result(result)

        executor = _InlineExecutor(work, cancel or threading.Event())
        runner = QueueRunner(queue, executor,
                             total_progress=total_progress or (lambda _f, _eta: None),
                             rate=lambda: None if last is None
                             else speed.rate(last.backend, last.budget_mb))
        executor.run(runner)
        return results

    # -- planning and resuming ---------------------------------------------------------------

    def _prepare(self) -> None:
        old = self._journal.load()
        written = {entry["output"]: FileState.from_json(entry.get("written"))
                   for entry in old.values() if isinstance(entry.get("output"), str)}

        def written_here(path: Path) -> bool:
            state = written.get(str(path.absolute()))
            return state is not None and state.matches(path)

        inputs = {real_path(request.input) for request in self.requests}
        taken: set[Path] = set()
        self._items = []
        for request in self.requests:
            entry = old.pop(str(request.input.absolute()), None)
            settings = _settings(request)
            item = None
            if entry is not None and entry.get("settings") == settings:
                item = self._resume(request, settings, entry)
            if item is None:
                item = self._plan(request, settings, inputs, taken, written_here)
            if item.request.output is not None:
                taken.add(item.request.output)
                _remove_stale_parts(item.request.output)
            self._items.append(item)
        _remove_stale_parts(self.journal_path)
        if self.journal_error is None:
            try:
                self._journal.rewrite([item.entry() for item in self._items]
                                      + list(old.values()))
            except OSError as exc:
                self.journal_error = str(exc)

    def _resume(self, request: UpscaleRequest, settings: dict[str, Any],
                entry: dict[str, Any]) -> _Item | None:
        """The item from its journal entry, or ``None`` to plan it afresh."""
        output, state = entry.get("output"), entry.get("state")
        if not isinstance(output, str) or state not in ("pending", "done"):
            return None  # failed or skipped: try again
        planned = Path(output)
        item = _Item(replace(request, output=planned), settings,
                     source=FileState.from_json(entry.get("source")),
                     written=FileState.from_json(entry.get("written")),
                     replacing=FileState.from_json(entry.get("replacing")))
        if not os.path.lexists(planned):  # not written yet, or removed by the user: make it
            item.source, item.written, item.replacing = _state(request.input), None, None
            return item
        if state == "pending" and item.replacing is not None \
                and item.replacing.matches(planned):
            return item  # the file it replaces is still there, untouched
        # the output there is this batch's own: written by an earlier run (done), or by the
        # interrupted one just before it stopped (pending)
        if item.source is not None and item.source.matches(request.input):
            item.state, item.replacing = "done", None
            if state == "pending":
                item.source = _state(request.input, content=True)
                item.written = _state(planned)
            return item
        if state == "done" and (item.written is None or not item.written.matches(planned)):
            return None  # its input changed, and the user changed that output: keep it
        item.source, item.written = _state(request.input), None
        item.replacing = _state(planned)  # the input changed: make it again, over its output
        return item

    def _plan(self, request: UpscaleRequest, settings: dict[str, Any], inputs: set[Path],
              taken: set[Path], written_here: Callable[[Path], bool]) -> _Item:
        """Plan the output file of a new item, applying ``on_exists`` now."""
        try:
            input_format: str | None = probe_image(request.input).format
        except ImageIOError:
            input_format = format_from_suffix(request.input)  # it will fail with its message
        target = output_path(request, output_format(request, input_format))
        try:
            plan = plan_output(request, target, inputs=inputs, taken=taken,
                               written_here=written_here)
        except ImageWriteError as exc:
            return _Item(replace(request, output=target), settings, "failed", str(exc))
        if plan.file is None:
            return _Item(replace(request, output=target), settings, "skipped", plan.note)
        return _Item(replace(request, output=plan.file), settings,
                     source=_state(request.input),
                     replacing=_state(plan.file) if plan.replaces else None, note=plan.note)

    # -- running -----------------------------------------------------------------------------

    def _run_item(self, item: _Item, backend, progress: Callable[[Progress], None],
                  cancel: threading.Event) -> UpscaleResult:
        request = item.request
        if item.state == "done":
            return UpscaleResult(request.input, request.output, "skipped",
                                 "already done in an earlier run")
        if item.state in ("skipped", "failed"):  # decided when planning
            return UpscaleResult(request.input, request.output, item.state, item.error)

        # the planned file, and only it (or a free name, should another file take its name)
        on_exists = "overwrite" if item.replacing is not None else \
            "skip" if request.on_exists == "skip" else "rename"
        source = _state(request.input, content=True)
        result = run_request(replace(request, on_exists=on_exists), backend, progress, cancel)
        if item.note:
            result.warnings.insert(0, item.note)
        if result.status == "cancelled":
            return result
        item.state = result.status  # done, skipped or failed
        item.error = result.error
        if result.output is not None:
            item.request = replace(request, output=result.output)
        if result.status == "done":
            item.source, item.replacing = source, None
            item.written = _state(result.output)
        self._record(item)
        return result

    def _record(self, item: _Item) -> None:
        if self.journal_error is not None:
            return
        try:
            self._journal.append(item.entry())
        except OSError as exc:
            self.journal_error = str(exc)


def _remove_stale_parts(path: Path) -> None:
    """Delete the temporary files left next to ``path`` by a killed atomic write of it."""
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


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image's header, ``None`` when it cannot be read (the job
    will say why)."""
    try:
        info = probe_image(path)
    except ImageIOError:
        return None
    return info.width, info.height


# -- scanning ----------------------------------------------------------------------------------


def _scan(paths: Sequence[Path], recursive: bool,
          output_dir: Path | None) -> list[tuple[Path, Path]]:
    """(file, folder relative to the output folder) for every input, de-duplicated."""
    if not paths:
        raise InputError("no input given")
    found: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    skip = real_path(output_dir) if output_dir is not None else None
    for path in paths:
        if not os.path.lexists(path):
            raise InputError(f"'{path}' does not exist")
        if path.is_dir():
            pairs = [(f, f.parent.relative_to(path)) for f in _walk(path, recursive, skip)]
        else:
            pairs = [(path, Path("."))]  # a link that loops or points nowhere fails as an item
        for file, rel in pairs:
            key = real_path(file)
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
    """The images in ``folder`` (and below, when ``recursive``) that are not outputs of this
    app (see the module docstring)."""
    files: list[Path] = []
    outputs: set[str] = set()  # listed by the journals found
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(
            d for d in dirs
            if recursive and not d.startswith(".") and real_path(Path(root, d)) != skip
        )
        files.extend(Path(root, n) for n in sorted(names) if is_image_path(n))
        if JOURNAL_NAME in names:
            outputs.update(entry["output"] for entry in Journal(Path(root, JOURNAL_NAME))
                           .load().values() if isinstance(entry.get("output"), str))
    return [f for f in files
            if str(f.absolute()) not in outputs and not written_by_this_app(f)]
