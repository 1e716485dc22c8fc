"""What a batch keeps in its output folder: the journal that resumes it, and the lock that keeps
a second run out (used by :mod:`.batch`).

**Journal** (``.bimacosr-journal.json``, JSON Lines): the first line is the header
``{"format": "bimacosr-journal", "version": 2}``; every further line is one item's entry as it
was at one moment. A batch rewrites the file once when it starts (atomically: the header and
one line per entry) and then appends one line per change, so its cost is linear in the batch.
Reading takes the last line of each input; a line cut short by a crash is ignored. A file of
another format or version (version 1 was one JSON document rewritten on every change) reads as
empty: its items are planned afresh.

**Lock** (``.bimacosr-lock``): a run holds an exclusive lock on it (``flock`` on POSIX, a byte
lock on Windows) for as long as it runs, and writes its process id, host and start time into
it for the message another run shows. The operating system drops the lock when the process
ends, however it ends, so a lock file left by a killed run is stale by construction and the
next run takes it over. The file is removed when the run ends.

:class:`FileState` is what a file was (size, modification and change times, and a SHA-256 of
its content): entries record it for each input (what its output was made from) and output
(what was written).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from ..atomic import atomic_write_bytes

__all__ = ["JOURNAL_NAME", "LOCK_NAME", "FileState", "FolderInUseError", "FolderLock", "Journal"]

JOURNAL_NAME = ".bimacosr-journal.json"
LOCK_NAME = ".bimacosr-lock"
_FORMAT = "bimacosr-journal"
_VERSION = 2
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileState:
    """A file as it was: size, modification and change times (ns) and, when taken with
    ``content=True``, the SHA-256 of its bytes."""

    size: int
    mtime_ns: int
    ctime_ns: int
    sha256: str | None = None

    @classmethod
    def of(cls, path: Path, content: bool = False) -> FileState:
        """The state of ``path`` now (OSError when it cannot be read)."""
        st = os.stat(path)
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                   _sha256(path) if content else None)

    @classmethod
    def from_json(cls, record: Any) -> FileState | None:
        """The state a journal entry recorded (:meth:`to_json`), ``None`` when it recorded none
        (or garbage)."""
        try:
            return cls(**record)
        except TypeError:
            return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def matches(self, path: Path) -> bool:
        """Whether ``path`` still holds the same bytes: the same size and times (no write can
        keep the change time), or else, when the content was hashed, the same SHA-256 (a copy,
        a ``touch``). ``False`` when it is gone or unreadable."""
        try:
            now = FileState.of(path)
            if now.size != self.size:
                return False
            if (now.mtime_ns, now.ctime_ns) == (self.mtime_ns, self.ctime_ns):
                return True
            return self.sha256 is not None and _sha256(path) == self.sha256
        except OSError:
            return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Journal:
    """The journal file (see the module docstring). Entries are dicts with at least
    ``"input"``; OSError from writing propagates (the batch then runs without resume)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._appending: IO[str] | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """The latest entry of each input, by input; ``{}`` without a readable journal of
        this version."""
        try:
            with open(self.path, encoding="utf-8") as fp:
                header = _record(fp.readline())
                if header != {"format": _FORMAT, "version": _VERSION}:
                    return {}
                entries = {}
                for line in fp:
                    entry = _record(line)
                    if entry is not None and isinstance(entry.get("input"), str):
                        entries[entry["input"]] = entry
                return entries
        except (OSError, UnicodeDecodeError):
            return {}

    def rewrite(self, entries: Iterable[dict[str, Any]]) -> None:
        """Replace the file atomically by the header and ``entries``, then keep it open for
        :meth:`append`."""
        self.close()
        lines = [_line({"format": _FORMAT, "version": _VERSION})]
        lines.extend(_line(entry) for entry in entries)
        atomic_write_bytes(self.path, "".join(lines).encode("utf-8"))
        self._appending = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 -- close()

    def append(self, entry: dict[str, Any]) -> None:
        """Add one entry (one write of one line, flushed to the system)."""
        if self._appending is None:
            raise OSError(f"the journal '{self.path}' is not open")
        self._appending.write(_line(entry))
        self._appending.flush()

    def close(self) -> None:
        """Flush the appended lines to the disk and close the file."""
        if self._appending is not None:
            appending, self._appending = self._appending, None
            with appending, contextlib.suppress(OSError):
                os.fsync(appending.fileno())


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _record(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None  # cut short by a crash
    return value if isinstance(value, dict) else None


# -- the lock ----------------------------------------------------------------------------------


class FolderInUseError(RuntimeError):
    """Another run holds the folder's lock; the message says which and what to do."""


class FolderLock:
    """The exclusive lock of one folder's batch (see the module docstring); a context
    manager.

    Raises (on entering):
        FolderInUseError: another run holds it.
        OSError: the lock file cannot be created or locked (read-only folder, a file system
            without locks).
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                if not _try_lock(fd):
                    raise FolderInUseError(self._busy_message(fd))
                if os.path.exists(self.path) and os.path.samestat(os.fstat(fd),
                                                                  os.stat(self.path)):
                    self._fd = fd  # else the holder removed it as we locked it: again
            finally:
                if self._fd is None:
                    os.close(fd)
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, json.dumps(holder).encode("utf-8"))
        return self

    def __exit__(self, *exc_info: object) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if os.name == "nt":  # an open file cannot be removed there
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        else:  # removed while still locked, so no one can lock the name's old file
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(fd)

    def _busy_message(self, fd: int) -> str:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            holder = json.loads(os.read(fd, 4096) or b"{}")
        except (OSError, ValueError):
            holder = {}
        who = "another bimacosr run"
        if isinstance(holder, dict) and holder.get("pid"):
            who += f" (process {holder['pid']} on {holder.get('host', '?')}, started " \
                   f"{holder.get('started', '?')})"
        return (f"'{self.path.parent}' is in use by {who}: wait for it to finish, or stop it "
                "and run this command again (two runs on one folder would do the same work "
                "twice)")


if os.name == "nt":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        # a byte far past the holder's details, which other runs read for their message
        os.lseek(fd, 1 << 30, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
