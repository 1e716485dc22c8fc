"""``bimacosr upscale INPUT... [options]``: upscale files and folders, resumably.

Progress goes to stderr: on a terminal one ``\\r``-updated line (image ``[i/n]``, its
percentage, tiles done/total and ETA, then the batch's percentage and ETA), otherwise one
line per file; then a summary. Warnings about a file that was still done (a JPEG without its
end marker, an existing file kept instead of overwritten) follow its line.

``--json`` prints one JSON object per line on stdout, each with an ``"event"``:

* ``"progress"``, after every tile: ``index`` (1-based) and ``count`` of the image in the
  batch, ``input``, ``fraction`` of the image done (0..1), ``tiles_done``, ``tiles_total``,
  ``eta_s`` (seconds left for the image, ``null`` until a tile has timed it),
  ``batch_fraction`` (0..1, weighed by input pixels) and ``batch_eta_s`` (``null`` until an
  image has timed the speed);
* ``"result"``, once per file: ``index``, ``count``, ``input``, ``output``, ``status``
  (``done``, ``skipped``, ``failed``, ``cancelled``), ``error``, ``seconds``, ``width_in``,
  ``height_in``, ``width_out``, ``height_out``, ``backend`` and ``warnings`` (a list of texts).

Exit status: 0 when every file was done or skipped, 1 when some failed or the output folder
is in use by another run, 2 for usage errors (bad options, an input that does not exist, no
images found, an output that is a file where a folder is needed or one file for several
images, a backend or device not available here), 130 after Ctrl+C and 143 after SIGTERM
(nothing partial is written; the same command resumes the batch).

Importing this module (``bimacosr --help``, ``upscale --help``) loads only the option schema:
the jobs, the engine and the image libraries load when a batch runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..jobs.options import BATCH_OPTIONS, JOB_OPTIONS, Option

if TYPE_CHECKING:
    from ..jobs import Progress, UpscaleRequest, UpscaleResult

__all__ = ["register", "run"]


def register(subparsers) -> None:
    """Add the ``upscale`` command to the CLI's subparsers."""
    p = subparsers.add_parser(
        "upscale",
        help="upscale images and folders",
        description="Upscale images 2x, 3x or 4x. Outputs go next to each input unless -o is "
        "given; an interrupted batch resumes when the same command is run again.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", type=Path,
                   help="image files and folders")
    p.add_argument("-o", "--output", dest="outdir", metavar="OUTDIR", type=Path,
                   help="output folder (folder trees are mirrored below it); a name ending "
                   "like an image (out.png) names the output file of a single image")
    for opt in JOB_OPTIONS + BATCH_OPTIONS:
        _add_option(p, opt)
    p.add_argument("--json", action="store_true",
                   help="JSON lines on stdout: progress events and one result per file")
    p.set_defaults(run=run)


def _add_option(parser: argparse.ArgumentParser, opt: Option) -> None:
    """The schema's option as a flag: a switch for booleans (default off), else a value read
    by the option itself (usage error with its reason)."""
    if opt.kind is bool:
        parser.add_argument(opt.flag, dest=opt.name, action="store_true", help=opt.help)
        return

    def parse(text: str):
        try:
            return opt.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{opt.name}: ")) from None

    parse.__name__ = opt.flag.lstrip("-")  # argparse names the type in its messages
    default = f"default: {opt.format(opt.default)}"
    parser.add_argument(opt.flag, dest=opt.name, type=parse, default=opt.default,
                        metavar="|".join(map(str, opt.choices)) if opt.choices else opt.metavar,
                        help=f"{opt.help} ({default})")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl+C would be, so that it unwinds the same way."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`_Terminated` (in the main thread, where Python
    runs signal handlers; elsewhere nothing changes)."""

    def terminate(_signum, _frame) -> None:
        raise _Terminated

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    from ..jobs import FolderInUseError, InputError, plan_batch

    err = sys.stderr
    display = _Display(err, sys.stdout if args.json else None)
    batch = None
    try:
        with _sigterm_as_interrupt():
            try:
                batch = plan_batch(args.inputs, args.outdir,
                                   **{o.name: getattr(args, o.name)
                                      for o in JOB_OPTIONS + BATCH_OPTIONS})
            except (InputError, ValueError) as exc:
                print(f"bimacosr upscale: error: {exc}", file=err)
                return 2
            backend = _load_backend(args)
            if isinstance(backend, int):
                return backend
            print(f"Upscaling {len(batch.requests)} image(s) x{args.scale} on {backend.name} "
                  f"({backend.device})", file=err)
            results = batch.run(backend, progress=display.progress, on_result=display.result,
                                total_progress=display.total)
    except FolderInUseError as exc:
        print(f"bimacosr upscale: error: {exc}", file=err)
        return 1
    except KeyboardInterrupt as exc:
        display.clear()
        where = f" (journal: {batch.journal_path})" if batch is not None else ""
        what = "Terminated (SIGTERM)" if isinstance(exc, _Terminated) else "Interrupted"
        print(f"{what}: no partial file was written. Run the same command again to "
              f"resume{where}.", file=err)
        return 143 if isinstance(exc, _Terminated) else 130
    display.summary(results, batch.journal_error)
    return 0 if all(r.ok for r in results) else 1


def _load_backend(args: argparse.Namespace):
    """The engine backend, or the exit status after printing why it cannot be had."""
    from ..checkpoint import CheckpointError
    from ..engine import select_backend

    missing = _missing_cuda(args)
    if missing:
        print(f"bimacosr upscale: error: {missing}", file=sys.stderr)
        return 2
    try:
        return select_backend(args.backend, device=None if args.device == "auto" else args.device)
    except CheckpointError as exc:  # a ValueError too: test it first
        print(f"bimacosr upscale: cannot load the model: {exc}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError) as exc:  # unknown or unavailable backend or device
        print(f"bimacosr upscale: error: {exc}", file=sys.stderr)
        return 2


def _missing_cuda(args: argparse.Namespace) -> str:
    """What is missing for ``--device cuda`` / ``--backend cuda`` here and how to get it
    (an NVIDIA GPU and its driver, PyTorch built with CUDA: ``engine.probe``, which imports no
    torch); "" when CUDA works or is not asked for."""
    if "cuda" not in (args.device, args.backend):
        return ""
    from ..engine import cuda_status

    status = cuda_status()
    if status.available:
        return ""
    flag = "--device cuda" if args.device == "cuda" else "--backend cuda"
    return f"{flag} needs {status.reason}; or leave it out to run on the CPU"


class _Display:
    """Progress and per-file lines on stderr; JSON lines on ``json_out``."""

    def __init__(self, err: TextIO, json_out: TextIO | None):
        self.err, self.json_out = err, json_out
        self.tty = err.isatty()
        self._dirty = False
        self._batch_fraction, self._batch_eta = 0.0, None

    def total(self, fraction: float, eta: float | None) -> None:
        """The batch's progress (by input pixels) and time left, when known."""
        self._batch_fraction, self._batch_eta = max(fraction, 0.0), eta

    def progress(self, index: int, total: int, request: UpscaleRequest, p: Progress) -> None:
        if self.json_out is not None:
            self._json(event="progress", index=index + 1, count=total,
                       input=str(request.input), fraction=round(p.fraction, 4),
                       tiles_done=p.tiles_done, tiles_total=p.tiles_total,
                       eta_s=_rounded(p.eta_s), batch_fraction=round(self._batch_fraction, 4),
                       batch_eta_s=_rounded(self._batch_eta))
        if not self.tty:
            return
        eta = "" if p.eta_s is None else f", ETA {_clock(p.eta_s)}"
        batch_eta = "" if self._batch_eta is None else f", ETA {_clock(self._batch_eta)}"
        line = (f"[{index + 1}/{total}] {request.input.name} {p.fraction:4.0%} "
                f"(tile {p.tiles_done}/{p.tiles_total}{eta}) | "
                f"batch {self._batch_fraction:4.0%}{batch_eta}")
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.err.write("\r" + line[:width].ljust(width))
        self.err.flush()
        self._dirty = True

    def clear(self) -> None:
        if self._dirty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.err.write("\r" + " " * width + "\r")
            self._dirty = False

    def result(self, index: int, total: int, r: UpscaleResult) -> None:
        self.clear()
        head = f"[{index + 1}/{total}]"
        if r.status == "done":
            line = f"{head} done {r.input} -> {r.output} ({r.seconds:.1f} s)"
        elif r.status == "skipped":
            line = f"{head} skipped {r.input}: {r.error}"
        else:
            line = f"{head} {r.status.upper()}: {r.error or r.input}"
        print(line, file=self.err, flush=True)
        for warning in r.warnings:
            print(f"  warning: {warning}", file=self.err, flush=True)
        if self.json_out is not None:
            self._json(event="result", index=index + 1, count=total, **r.to_dict())

    def _json(self, **event) -> None:
        print(json.dumps(event), file=self.json_out, flush=True)

    def summary(self, results: list[UpscaleResult], journal_error: str | None) -> None:
        self.clear()
        counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
        warned = [r for r in results if r.warnings]
        print(f"Summary: {counts['done']} done, {counts['skipped']} skipped, "
              f"{counts['failed']} failed" + (f", {len(warned)} with warnings" if warned else ""),
              file=self.err)
        for r in results:
            if r.status == "failed":
                print(f"  failed: {r.error}", file=self.err)
        for r in warned:
            for warning in r.warnings:
                print(f"  warning: {r.input.name}: {warning}", file=self.err)
        if journal_error:
            print(f"warning: the batch journal could not be written, so this batch cannot be "
                  f"resumed: {journal_error}", file=self.err)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"
