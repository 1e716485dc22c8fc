"""The selected queue item, shown: its facts in the details panel and, once it is done, its result
in the compare view (loaded and checked in the background; the quality reports are kept for
the details panel). Other states show a hint in the compare view instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..jobs import QualityReport, QueueItem, Status
from .loaders import CompareImages

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["SelectionDetails"]

_COMPARE_HINTS = {
    Status.QUEUED: "Waiting in the queue. Press Start (Ctrl+Enter) to upscale.",
    Status.RUNNING: "Upscaling… the comparison appears when it is done.",
    Status.DONE: "The result file is not known.",
    Status.FAILED: "This photo could not be upscaled.",
    Status.SKIPPED: "Skipped: the output file already existed.",
    Status.CANCELLED: "Cancelled.",
}


class SelectionDetails:
    """Keeps ``window``'s details panel and compare view on the selected item."""

    def __init__(self, window: MainWindow) -> None:
        self._window = window
        self._reports: dict[str, QualityReport] = {}
        self._compare_id: str | None = None  # item whose result is shown or loading
        self._shown: tuple | None = None  # (id, status, output) the compare view was set for
        window.model.dataChanged.connect(self._data_changed)
        window.table.selectionModel().selectionChanged.connect(self.refresh)
        window.loaders.compareReady.connect(self._compare_ready)
        window.loaders.compareFailed.connect(self._compare_failed)

    def selected_item(self) -> QueueItem | None:
        rows = self._window.table.selected_rows()
        return self._window.model.item(rows[0]) if rows else None

    def refresh(self) -> None:
        """Show the selected item (its result loads when it is not the one shown already)."""
        window = self._window
        item = self.selected_item()
        self._show_details(item)
        window.commands.update()
        shown = None if item is None else (item.id, item.status, item.output)
        if shown == self._shown:  # progress ticks of the selected item: nothing new to show
            return
        self._shown = shown
        if item is not None and item.status is Status.DONE and item.output is not None:
            self._compare_id = item.id
            window.compare.set_images(None, "Loading the result…")
            window.loaders.compare(item.id, item.input, item.output, item.seam_period)
            return
        self._compare_id = None
        window.compare.set_images(None, "" if item is None else _COMPARE_HINTS[item.status])

    def _data_changed(self, top, bottom) -> None:
        item = self.selected_item()
        if item is not None and top.row() <= self._window.model.row_of(item.id) <= bottom.row():
            self.refresh()
        self._window.commands.update()

    def _show_details(self, item: QueueItem | None) -> None:
        estimate = ""
        if item is not None and item.status is Status.QUEUED:
            estimate = self._window.engine_status.estimate_text(item)
        report = self._reports.get(item.id) if item is not None else None
        self._window.details.show_item(item, report, estimate,
                                       analysing=item is not None and item.id == self._compare_id)

    def _compare_ready(self, images: CompareImages) -> None:
        self._reports[images.item_id] = images.report
        if images.item_id == self._compare_id:
            self._window.compare.set_images(images)
            self._show_details(self.selected_item())
            self._window.commands.update()

    def _compare_failed(self, item_id: str, message: str) -> None:
        if item_id == self._compare_id:
            self._window.compare.set_images(None, f"The result cannot be shown:\n{message}")
            self._window.commands.update()
