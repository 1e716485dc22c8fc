"""The queue and its runner without Qt (jobs.queue): the rules the window relies on, driven by
a synchronous executor as a script or another front end would drive them."""

from __future__ import annotations

from pathlib import Path

from bimacosr_app.jobs import (
    JobOutcome,
    JobQueue,
    QueueItem,
    QueueRunner,
    QueueStore,
    SpeedSample,
    SpeedTable,
    Status,
    estimate_memory_mb,
    estimate_seconds,
)


class Executor:
    """Runs each submitted item at once: done, except names in ``fail``; records cancels."""

    def __init__(self, fail=()):
        self.runner: QueueRunner | None = None
        self.fail, self.submitted, self.cancels = set(fail), [], 0

    def submit(self, item):
        self.submitted.append(item.input.name)
        self.runner.on_progress(item.id, 0.5, 3.0)
        ok = item.input.name not in self.fail
        self.runner.on_done(item.id, JobOutcome(
            Status.DONE if ok else Status.FAILED, output=item.input.with_suffix(".out.png")
            if ok else None, out_size=(8, 8), seconds=1.0, error="" if ok else "broken"))

    def cancel_current(self):
        self.cancels += 1


def _queue(*names, sizes=None):
    queue = JobQueue()
    items = [QueueItem(Path(f"/photos/{n}"), in_size=(sizes or {}).get(n)) for n in names]
    queue.extend(queue.new_items(items))
    return queue


def test_the_queue_refuses_duplicates_moves_within_bounds_and_retries():
    queue = _queue("a.png", "b.png")
    again = QueueItem(Path("/photos/a.png"))
    new = queue.new_items([again, QueueItem(Path("/photos/c.png")),
                           QueueItem(Path("/photos/c.png"))])
    assert [it.input.name for it in new] == ["c.png"]  # a is queued; c only once
    assert queue.move_target(0, 99) == 1 and queue.move_target(1, 1) is None
    queue.move(0, 1)
    assert [it.input.name for it in queue.items()] == ["b.png", "a.png"]
    queue.update(queue.item(0).id, status=Status.FAILED, error="x", stage="y")
    assert queue.set_statuses((Status.FAILED,), Status.QUEUED) == 1
    assert queue.item(0).error == "" and queue.item(0).stage == ""
    assert queue.update("no such id", error="z") == -1


def test_the_runner_runs_in_order_reports_totals_and_summarises():
    queue = _queue("a.png", "b.png", "c.png", sizes={"a.png": (10, 10), "b.png": (20, 10)})
    executor = Executor(fail={"b.png"})
    states, totals, summaries = [], [], []
    runner = QueueRunner(queue, executor, state_changed=lambda: states.append(runner.running),
                         total_progress=lambda f, eta: totals.append((round(f, 3), eta)),
                         batch_finished=summaries.append)
    executor.runner = runner
    runner.start()
    assert executor.submitted == ["a.png", "b.png", "c.png"]
    assert [it.status for it in queue.items()] == [Status.DONE, Status.FAILED, Status.DONE]
    assert queue.item(1).error == "broken" and queue.item(0).progress == 1.0
    assert summaries and (summaries[0].done, summaries[0].failed) == (2, 1)
    assert summaries[0].last_output == "/photos"
    assert states == [True, False] and totals[-1] == (-1.0, None) and not runner.running
    # weighted by input pixels (c has no size: weight 1): a half-done `a` is 50 of 301
    assert totals[0] == (round(50 / 301, 3), None)


def test_pause_after_current_and_cancel_all():
    queue = _queue("a.png", "b.png")
    submitted = []

    class Held:  # keeps the item running until told
        def submit(self, item):
            submitted.append(item)

        def cancel_current(self):
            submitted.append("cancel")

    runner = QueueRunner(queue, Held())
    runner.start()
    runner.set_pause_after_current(True)
    runner.on_done(submitted[0].id, JobOutcome(Status.DONE))
    assert not runner.running and queue.item(1).status is Status.QUEUED  # paused
    runner.start()
    assert submitted[-1].input.name == "b.png" and runner.current == submitted[-1].id
    queue.extend(queue.new_items([QueueItem(Path("/photos/c.png"))]))
    runner.cancel_all()
    assert submitted[-1] == "cancel" and queue.item(2).status is Status.CANCELLED
    assert queue.item(1).stage == "Cancelling…"


def test_estimates_and_the_saved_queue(tmp_path):
    item = QueueItem(Path("a.png"), in_size=(100, 50), status=Status.RUNNING)
    assert estimate_seconds(item, 2.0) == 2.0 * 100 * 50 * 16 / 1e6
    assert estimate_seconds(item, None) is None
    assert estimate_memory_mb(item, 64) == (5000 * 12 + 5000 * 16 * 18) / 2**20 + 64
    store = QueueStore(tmp_path)
    store.save([item])
    (loaded,) = store.unfinished()  # running when saved: queued again
    assert loaded.status is Status.QUEUED and loaded.in_size == (100, 50)


def test_the_batch_eta_counts_the_items_with_an_estimate():
    queue = _queue("a.png", "b.png", "c.png")
    totals = []

    class Held:  # keeps the item running until told
        def submit(self, item):
            pass

        def cancel_current(self):
            pass

    runner = QueueRunner(queue, Held(), total_progress=lambda f, eta: totals.append(eta))
    runner.start()
    assert totals == [None]  # no estimate at all (the command line's first image): no ETA
    a, b, _c = queue.items()
    runner.on_progress(a.id, 0.5, 3.0)
    assert totals[-1] is None  # a tile's timing alone is not an estimate of the batch
    queue.update(b.id, estimate=4.0)  # c has none (its size is not known yet): adds nothing
    runner.on_progress(a.id, 0.6, 2.0)
    assert totals[-1] == 2.0 + 4.0
    a.estimate, a.eta = 10.0, None
    runner.on_progress(a.id, 0.6, None)
    assert totals[-1] == 10.0 * 0.4 + 4.0


def test_speeds_are_learned_per_backend_and_tile_size():
    table = SpeedTable()
    assert table.rate("cpu-packed", None) is None
    table.add(SpeedSample("cpu-packed", None, 512, seconds=4.0, model_pixels=2_000_000))
    assert table.rate("cpu-packed", None) == 2.0
    assert table.rate("cpu-packed", 64.0) is None  # a budget never run: its tile is unknown
    assert table.rate("reference", None) is None
    table.add(SpeedSample("cpu-packed", 64.0, 128, seconds=3.0, model_pixels=1_000_000))
    assert table.rate("cpu-packed", 64.0) == 3.0 and table.rate("cpu-packed", None) == 2.0
    # The recent jobs count most: the earlier totals are halved before a job is added.
    table.add(SpeedSample("cpu-packed", None, 512, seconds=1.0, model_pixels=1_000_000))
    assert table.rate("cpu-packed", None) == (4.0 * 0.5 + 1.0) / (2.0 * 0.5 + 1.0)
    # Another budget giving the same tile size shares its measurements.
    table.add(SpeedSample("cpu-packed", 2048.0, 512, seconds=1.0, model_pixels=1_000_000))
    assert table.rate("cpu-packed", 2048.0) == table.rate("cpu-packed", None)
    again = SpeedTable.from_json(table.to_json())
    assert again.to_json() == table.to_json() and again.rate("cpu-packed", 64.0) == 3.0
    assert SpeedTable.from_json("").rate("cpu-packed", None) is None
    assert SpeedTable.from_json('{"rates": {"x/1": "nonsense"}}').to_json() == \
        SpeedTable().to_json()


def test_the_batch_eta_estimates_by_rate_the_items_without_one():
    """The command line gives the runner a rate (seconds per model output megapixel) rather
    than an estimate per item; an item's own estimate still counts."""
    queue = _queue("a.png", "b.png", "c.png", sizes={"b.png": (100, 50), "c.png": (10, 10)})
    totals, rate = [], [None]

    class Held:
        def submit(self, item):
            pass

        def cancel_current(self):
            pass

    runner = QueueRunner(queue, Held(), total_progress=lambda f, eta: totals.append(eta),
                         rate=lambda: rate[0])
    runner.start()
    a, _b, c = queue.items()
    runner.on_progress(a.id, 0.5, 3.0)
    assert totals[-1] is None  # no rate yet
    rate[0] = 2.0
    runner.on_progress(a.id, 0.5, 3.0)
    assert totals[-1] == 3.0 + 2.0 * (100 * 50 + 10 * 10) * 16 / 1e6
    queue.update(c.id, estimate=7.0)
    runner.on_progress(a.id, 0.5, 3.0)
    assert totals[-1] == 3.0 + 2.0 * 100 * 50 * 16 / 1e6 + 7.0


def test_a_retried_item_counts_once_in_the_batch():
    queue = _queue("a.png", "b.png", sizes={"a.png": (10, 10), "b.png": (10, 10)})
    submitted, totals, summaries = [], [], []

    class Held:
        def submit(self, item):
            submitted.append(item)

        def cancel_current(self):
            pass

    runner = QueueRunner(queue, Held(), total_progress=lambda f, eta: totals.append(f),
                         batch_finished=summaries.append)
    runner.start()
    runner.on_done(submitted[-1].id, JobOutcome(Status.FAILED, error="x"))  # a failed
    assert totals[-1] == 0.5
    queue.set_statuses((Status.FAILED,), Status.QUEUED)  # retried while b runs
    runner.on_done(submitted[-1].id, JobOutcome(Status.DONE))  # b; then a again
    assert submitted[-1].input.name == "a.png" and totals[-1] == 0.5
    runner.on_done(submitted[-1].id, JobOutcome(Status.DONE))
    assert totals[-2] == 1.0 and (summaries[0].done, summaries[0].failed) == (2, 0)


class _Counted(QueueItem):
    """A queue item that counts every attribute read of every instance."""

    reads = 0

    def __getattribute__(self, name):
        _Counted.reads += 1
        return super().__getattribute__(name)


def _reads_for_a_batch(n: int) -> int:
    queue = JobQueue()
    queue.extend([_Counted(Path(f"/photos/{i}.png"), in_size=(64, 48), estimate=1.0)
                  for i in range(n)])
    submitted = []

    class Loop:  # the command line's way: one job after another, four tiles each
        def submit(self, item):
            submitted.append(item)

        def cancel_current(self):
            pass

    runner = QueueRunner(queue, Loop())
    _Counted.reads = 0
    runner.start()
    while submitted:
        item = submitted.pop()
        for tile in range(1, 5):
            runner.on_progress(item.id, tile / 4, 1.0)
        runner.on_done(item.id, JobOutcome(Status.DONE, output=Path("/out/x.png")))
    assert queue.count(Status.DONE) == n
    return _Counted.reads


def test_the_runner_costs_the_same_per_item_in_any_batch():
    """Issue 16: the runner read every item of the batch on every event (a list membership
    test per queued item when starting one, a scan of the queue per item looked up), about
    66 s for 1,000 items. Counted, not timed: the item reads per item must not grow with the
    batch (benchmarks/queue_runner.py has the times)."""
    small, large = _reads_for_a_batch(100), _reads_for_a_batch(400)
    assert large / small < 4 * 1.1, (small, large)


def test_the_results_warnings_reach_the_item_the_summary_and_the_saved_queue(tmp_path):
    """Issue 16 follow-up: JobOutcome.from_result dropped UpscaleResult.warnings, so the
    window never said that a file was kept, a JPEG had no end marker or memory ran out."""
    from bimacosr_app.jobs import UpscaleResult

    result = UpscaleResult(Path("/photos/a.jpg"), Path("/photos/a_x4 (1).jpg"), "done")
    result.warnings.extend(["a_x4.jpg exists and was not written by this app: kept",
                            "the JPEG ends without its end marker"])
    outcome = JobOutcome.from_result(result, backend="test")
    assert outcome.warnings == tuple(result.warnings)

    queue = _queue("a.jpg", "b.jpg")
    summaries, submitted = [], []

    class Held:
        def submit(self, item):
            submitted.append(item)

        def cancel_current(self):
            pass

    runner = QueueRunner(queue, Held(), batch_finished=summaries.append)
    runner.start()
    runner.on_done(submitted[-1].id, outcome)
    a = queue.item(0)
    assert a.warnings == list(result.warnings)
    runner.on_done(submitted[-1].id, JobOutcome(Status.DONE))
    assert queue.item(1).warnings == [] and summaries[0].warned == 1
    store = QueueStore(tmp_path)
    store.save(queue.items())
    assert store.load()[0].warnings == list(result.warnings)
    queue.update(a.id, status=Status.QUEUED)  # run again: the old warnings go
    runner.start()
    assert queue.item(0).warnings == []
