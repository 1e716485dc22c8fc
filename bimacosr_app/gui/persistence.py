"""The saved queue: ``queue.json`` in the user data dir, rewritten after every change.

``<platformdirs user_data_dir>/queue.json`` (``$BIMACOSR_DATA_DIR`` when set). Written
atomically (temporary file + rename), so a crash leaves the previous or the new version. On
start the window offers to resume when the saved queue has unfinished items; items that were
running when the app stopped come back as queued.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from platformdirs import user_data_dir

from ..atomic import atomic_write_bytes
from .queue_model import QueueItem, Status
from .settings import APP_NAME

__all__ = ["QueueStore", "default_data_dir"]

FORMAT_VERSION = 1
_FIELDS = ("id", "scale", "subfolder", "error", "seconds", "backend", "model", "tiles")


def default_data_dir() -> Path:
    override = os.environ.get("BIMACOSR_DATA_DIR")
    return Path(override) if override else Path(user_data_dir(APP_NAME, appauthor=False))


def _item_to_json(item: QueueItem) -> dict:
    record = {name: getattr(item, name) for name in _FIELDS}
    record.update(
        seam_period=list(item.seam_period),
        input=str(item.input),
        status=item.status.value,
        output=str(item.output) if item.output is not None else None,
        in_size=list(item.in_size) if item.in_size else None,
        out_size=list(item.out_size) if item.out_size else None,
    )
    return record


def _item_from_json(record: dict) -> QueueItem:
    status = Status(record["status"])
    if status is Status.RUNNING:  # interrupted: run it again
        status = Status.QUEUED
    item = QueueItem(input=Path(record["input"]), status=status)
    for name in _FIELDS:
        if record.get(name) is not None:
            setattr(item, name, record[name])
    item.seam_period = tuple(record.get("seam_period") or (0, 0))
    item.output = Path(record["output"]) if record.get("output") else None
    item.in_size = tuple(record["in_size"]) if record.get("in_size") else None
    item.out_size = tuple(record["out_size"]) if record.get("out_size") else None
    return item


class QueueStore:
    """Reads and writes the queue file in ``folder`` (default: :func:`default_data_dir`)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_data_dir()
        self.path = self.folder / "queue.json"

    def save(self, items: list[QueueItem]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {"version": FORMAT_VERSION, "items": [_item_to_json(it) for it in items]}
        atomic_write_bytes(self.path, json.dumps(payload, indent=1).encode("utf-8"))

    def load(self) -> list[QueueItem]:
        """The saved items; an empty list when there is no file or it cannot be parsed."""
        try:
            payload = json.loads(self.path.read_text(encoding="utf-8"))
            if payload.get("version") != FORMAT_VERSION:
                return []
            return [_item_from_json(r) for r in payload["items"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return []

    def unfinished(self) -> list[QueueItem]:
        """The saved queue if it still has work to do (queued or interrupted items), else []."""
        items = self.load()
        return items if any(it.status is Status.QUEUED for it in items) else []
