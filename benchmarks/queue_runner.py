"""Queue runner benchmark: what the queue model (``jobs.JobQueue`` and ``jobs.QueueRunner``)
costs a batch of N images, beside the images.

    python -m benchmarks.queue_runner [--json] [--sizes 1000,5000,20000] [--tiles 8]

For each N: a queue of N items (each with its input size and a time estimate, as the window
sets them), run by a ``QueueRunner`` through an executor that finishes every job at once, after
``--tiles`` progress reports (one per tile, as a job reports them). Every report makes the
runner update the item and emit the batch's progress and ETA, as the command line and the
window see them. Reported: seconds in all, microseconds per item and per event (a progress
report or a finished job), and that the batch summary counts every item.

With ``--json`` the last line printed is ``{"rows": [...]}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks import rows_json
from bimacosr_app.jobs.queue import JobOutcome, JobQueue, QueueItem, QueueRunner, Status


class _Instant:
    """Runs each submitted job at once on the calling thread: ``tiles`` progress reports,
    then done (the loop of ``jobs.batch``'s inline executor)."""

    def __init__(self, tiles: int) -> None:
        self.tiles = tiles
        self.submitted: QueueItem | None = None
        self.events = 0

    def submit(self, item: QueueItem) -> None:
        self.submitted = item

    def cancel_current(self) -> None:
        pass

    def run(self, runner: QueueRunner) -> None:
        runner.start()
        while self.submitted is not None:
            item, self.submitted = self.submitted, None
            for t in range(1, self.tiles + 1):
                runner.on_progress(item.id, t / self.tiles, 0.5 * (self.tiles - t))
            runner.on_done(item.id, JobOutcome(Status.DONE, output=Path(f"/out/{item.id}.png"),
                                               seconds=1.0))
            self.events += self.tiles + 1


def _run(n: int, tiles: int) -> dict:
    queue = JobQueue()
    queue.extend([QueueItem(input=Path(f"/photos/IMG_{i:05d}.jpg"),
                            in_size=(640 + i % 7, 480), estimate=2.0) for i in range(n)])
    summaries, totals = [], []
    executor = _Instant(tiles)
    runner = QueueRunner(queue, executor, total_progress=lambda f, eta: totals.append(f),
                         batch_finished=summaries.append)
    t0 = time.perf_counter()
    executor.run(runner)
    seconds = time.perf_counter() - t0
    assert summaries and summaries[0].done == n, summaries
    assert abs(totals[-2] - 1.0) < 1e-9 and totals[-1] == -1.0  # then idle
    return {"items": n, "tiles": tiles, "events": executor.events, "total_s": seconds,
            "us_per_item": seconds / n * 1e6, "us_per_event": seconds / executor.events * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000",
                        help="batch sizes (default 1000,5000,20000)")
    parser.add_argument("--tiles", type=int, default=8, help="progress reports per job")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON last")
    args = parser.parse_args(argv)
    rows = [_run(int(n), args.tiles) for n in args.sizes.split(",") if n]
    print(f"| {'items':>7} | {'tiles':>5} | {'events':>8} | {'total s':>8} | {'µs/item':>8} | "
          f"{'µs/event':>8} |")
    print(f"|{'-' * 8}:|{'-' * 6}:|{'-' * 9}:|{'-' * 9}:|{'-' * 9}:|{'-' * 9}:|")
    for r in rows:
        print(f"| {r['items']:>7,} | {r['tiles']:>5} | {r['events']:>8,} | {r['total_s']:>8.3f} "
              f"| {r['us_per_item']:>8.1f} | {r['us_per_event']:>8.2f} |")
    if args.json:
        print(rows_json(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
