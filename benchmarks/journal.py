"""Batch journal benchmark: what the journal costs a batch of N images, beside the images.

    python -m benchmarks.journal [--json] [--sizes 1000,5000,20000] [--rewrite-sizes 250,500,1000]

For each N, in a temporary folder: a batch's life as ``jobs.batch`` drives its
:class:`~bimacosr_app.jobs.journal.Journal` — the start (``rewrite``: the header and N pending
entries, written atomically), one ``append`` per finished item (N ``done`` entries), the close
(one fsync), then a resume's ``load`` of the 2N + 1 lines. Entries are shaped like the batch's
(absolute paths, settings, the input's and output's file states). Reported: seconds for each
step, microseconds per entry, and the file's size.

``--rewrite-sizes`` runs the same changes the way journal version 1 did (the whole journal
rewritten atomically, with an fsync, on every change: ``rewrite`` called once per item), to
show its cost growing with the square of N.

With ``--json`` the last line printed is ``{"rows": [...]}``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks import rows_json
from bimacosr_app.jobs.journal import JOURNAL_NAME, FileState, Journal

_SETTINGS = {"output_folder": "/home/someone/Pictures/upscaled", "scale": 4, "format": "same",
             "quality": 95, "strip_metadata": False, "on_exists": "rename",
             "naming": "{stem}_x{scale}.{ext}", "seed": 0}


def _entry(i: int, state: str) -> dict:
    """An entry as the batch writes it, for the i-th photo."""
    source = FileState(4_200_000 + i, 1_765_000_000_000_000_000 + i, 1_765_000_000_000_000_000 + i,
                       f"{i:064x}" if state == "done" else None)
    written = FileState(38_000_000 + i, 1_766_000_000_000_000_000 + i,
                        1_766_000_000_000_000_000 + i)
    return {"input": f"/home/someone/Pictures/2025/holiday/IMG_{i:05d}.jpg",
            "settings": _SETTINGS, "state": state,
            "output": f"/home/someone/Pictures/upscaled/2025/holiday/IMG_{i:05d}_x4.jpg",
            "error": None, "source": source.to_json(),
            "written": written.to_json() if state == "done" else None, "replacing": None}


def _append_run(folder: Path, n: int) -> dict:
    """The batch's way: one rewrite at the start, one append per change, one load."""
    journal = Journal(folder / JOURNAL_NAME)
    pending = [_entry(i, "pending") for i in range(n)]
    done = [_entry(i, "done") for i in range(n)]
    t0 = time.perf_counter()
    journal.rewrite(pending)
    t1 = time.perf_counter()
    for entry in done:
        journal.append(entry)
    journal.close()
    t2 = time.perf_counter()
    loaded = Journal(folder / JOURNAL_NAME).load()
    t3 = time.perf_counter()
    assert len(loaded) == n and all(e["state"] == "done" for e in loaded.values())
    return {"mode": "append (version 2)", "entries": n, "start_s": t1 - t0,
            "changes_s": t2 - t1, "load_s": t3 - t2, "total_s": t3 - t0,
            "us_per_entry": (t3 - t0) / n * 1e6,
            "file_mb": (folder / JOURNAL_NAME).stat().st_size / 1e6}


def _rewrite_run(folder: Path, n: int) -> dict:
    """Version 1's way: the whole journal rewritten atomically on every change."""
    journal = Journal(folder / JOURNAL_NAME)
    entries = [_entry(i, "pending") for i in range(n)]
    t0 = time.perf_counter()
    journal.rewrite(entries)
    t1 = time.perf_counter()
    for i in range(n):
        entries[i] = _entry(i, "done")
        journal.rewrite(entries)
    journal.close()
    t2 = time.perf_counter()
    loaded = Journal(folder / JOURNAL_NAME).load()
    t3 = time.perf_counter()
    assert len(loaded) == n
    return {"mode": "rewrite per change (version 1)", "entries": n, "start_s": t1 - t0,
            "changes_s": t2 - t1, "load_s": t3 - t2, "total_s": t3 - t0,
            "us_per_entry": (t3 - t0) / n * 1e6,
            "file_mb": (folder / JOURNAL_NAME).stat().st_size / 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000",
                        help="batch sizes for the append-only journal (default 1000,5000,20000)")
    parser.add_argument("--rewrite-sizes", default="250,500,1000",
                        help="batch sizes for the rewrite-per-change comparison ('' for none)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON last")
    args = parser.parse_args(argv)
    runs = [(_append_run, int(n)) for n in args.sizes.split(",") if n]
    runs += [(_rewrite_run, int(n)) for n in args.rewrite_sizes.split(",") if n]
    rows = []
    for run, n in runs:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(run(Path(tmp), n))
    print(f"| {'mode':<30} | {'entries':>7} | {'start s':>7} | {'changes s':>9} | "
          f"{'load s':>6} | {'total s':>7} | {'µs/entry':>8} | {'MB':>5} |")
    print(f"|{'-' * 32}|{'-' * 8}:|{'-' * 8}:|{'-' * 10}:|{'-' * 7}:|{'-' * 8}:|{'-' * 9}:|"
          f"{'-' * 6}:|")
    for r in rows:
        print(f"| {r['mode']:<30} | {r['entries']:>7,} | {r['start_s']:>7.3f} | "
              f"{r['changes_s']:>9.3f} | {r['load_s']:>6.3f} | {r['total_s']:>7.3f} | "
              f"{r['us_per_entry']:>8.1f} | {r['file_mb']:>5.2f} |")
    if args.json:
        print(rows_json(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
