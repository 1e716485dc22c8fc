"""``bimacosr upscale INPUT... [options]``: upscale files and folders, resumably.

Progress goes to stderr (``\\r``-updated on a terminal, one line per file otherwise), then a
summary. ``--json`` prints one JSON object per file on stdout: input, output, status, error,
seconds, width_in, height_in, width_out, height_out, backend.

Exit status: 0 when every file was done or skipped, 1 when some failed, 2 for usage errors
(bad options, an input that does not exist, no images found, a backend not available here),
130 after Ctrl+C (nothing partial is written; the same command resumes the batch).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import TextIO

from ..jobs import (
    BATCH_OPTIONS,
    JOB_OPTIONS,
    InputError,
    Option,
    Progress,
    UpscaleRequest,
    UpscaleResult,
    plan_batch,
)

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
                   help="output folder (folder trees are mirrored below it)")
    for opt in JOB_OPTIONS + BATCH_OPTIONS:
        _add_option(p, opt)
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
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


def run(args: argparse.Namespace) -> int:
    err = sys.stderr
    display = _Display(err, sys.stdout if args.json else None)
    batch = None
    try:
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
    except KeyboardInterrupt:
        display.clear()
        where = f" (journal: {batch.journal_path})" if batch is not None else ""
        print(f"Interrupted: no partial file was written. Run the same command again to "
              f"resume{where}.", file=err)
        return 130
    display.summary(results, batch.journal_error)
    return 0 if all(r.ok for r in results) else 1


def _load_backend(args: argparse.Namespace):
    """The engine backend, or the exit status after printing why it cannot be had."""
    from ..checkpoint import CheckpointError
    from ..engine import select_backend

    try:
        return select_backend(args.backend, device=None if args.device == "auto" else args.device)
    except CheckpointError as exc:  # a ValueError too: test it first
        print(f"bimacosr upscale: cannot load the model: {exc}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError) as exc:  # unknown or unavailable backend or device
        print(f"bimacosr upscale: error: {exc}", file=sys.stderr)
        return 2


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
        if self.json_out is not None:
            print(json.dumps(r.to_dict()), file=self.json_out, flush=True)

    def summary(self, results: list[UpscaleResult], journal_error: str | None) -> None:
        self.clear()
        counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
        print(f"Summary: {counts['done']} done, {counts['skipped']} skipped, "
              f"{counts['failed']} failed", file=self.err)
        for r in results:
            if r.status == "failed":
                print(f"  failed: {r.error}", file=self.err)
        if journal_error:
            print(f"warning: the batch journal could not be written, so this batch cannot be "
                  f"resumed: {journal_error}", file=self.err)


def _clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"
