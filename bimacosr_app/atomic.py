"""Atomic file writing, the one helper every writer of the package uses: a file is either
complete under its final name, or not there at all.

Data goes to a hidden temporary file in the target folder (same file system, so the final
rename is atomic), ``.bimacosr-<8 hex of the name's hash>-<8 random hex>.part``: 32 bytes
whatever the final name's length, so every name the file system allows (up to 255 bytes) can
be written, and :func:`temp_name_pattern` still finds the leftovers of one target. It is
created with the usual permissions (0o666 minus umask, unlike ``tempfile.mkstemp``'s 0o600),
flushed and fsync'ed, then ``os.replace``'d onto the final name, and the folder is fsync'ed
(POSIX, best effort). On Windows the rename fails while another program (an image viewer) has
the target open: it is retried for 1.55 s, then :class:`TargetInUseError` is raised. On any
failure, ``KeyboardInterrupt`` included, the temporary file is removed and the exception
propagates; an existing file under the final name is left untouched. Callers that owe their
users a message (``image_io``) translate the exception.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["TargetInUseError", "atomic_write", "atomic_write_bytes", "temp_name_pattern"]

_WINDOWS = os.name == "nt"


class TargetInUseError(PermissionError):
    """Windows refused to replace the target: another program holds it open."""


#: Pauses between the tries of a rename refused on Windows (a viewer holding the target open).
REPLACE_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8)


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Create or replace ``path`` atomically with the bytes ``write(file)`` writes; returns it
    as a Path. The folder must exist."""
    path = Path(path)
    fp, temp = _open_temp(path)
    try:
        with fp:
            write(fp)
            fp.flush()
            os.fsync(fp.fileno())
        _replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Create or replace ``path`` atomically with ``data``; see :func:`atomic_write`."""
    return atomic_write(path, lambda fp: fp.write(data))


def _replace(temp: Path, path: Path) -> None:
    """``os.replace``; on Windows retried while the target is held open by another program
    (``PermissionError``: sharing violation or access denied)."""
    for delay in (*REPLACE_RETRY_DELAYS, None) if _WINDOWS else (None,):
        try:
            os.replace(temp, path)
            return
        except PermissionError as exc:
            if not (_WINDOWS and path.is_file()):
                raise
            if delay is None:
                raise TargetInUseError(exc.errno, exc.strerror, str(path)) from exc
            time.sleep(delay)


def temp_name_pattern(path: Path) -> str:
    """A regular expression matching the temporary names of writes to ``path`` (to find the
    ones a killed process left behind)."""
    return rf"\.bimacosr-{_name_digest(path)}-[0-9a-f]{{8}}\.part"


def _name_digest(path: Path) -> str:
    """8 hex digits standing for ``path``'s file name in its temporary names."""
    return hashlib.sha256(path.name.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _open_temp(path: Path) -> tuple[BinaryIO, Path]:
    """Create and open a new, uniquely named temporary file next to ``path``."""
    while True:
        temp = path.with_name(f".bimacosr-{_name_digest(path)}-{secrets.token_hex(4)}.part")
        try:
            return open(temp, "xb"), temp  # closed by atomic_write
        except FileExistsError:
            continue


def _fsync_folder(folder: Path) -> None:
    """Persist the rename itself (POSIX); best effort, not possible on Windows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
