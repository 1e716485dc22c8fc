"""Atomic file writing: a file is either complete under its final name, or not there at all.

Data goes to a hidden temporary file in the target folder (same file system, so the final
rename is atomic): ``.<name>.<random>.part``. It is flushed and fsync'ed, then
``os.replace``'d onto the final name. On any failure the temporary file is removed and an
:class:`~bimacosr_app.image_io.errors.ImageWriteError` explains what went wrong; an existing
file under the final name is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import ImageWriteError, describe_os_error

__all__ = ["atomic_write", "atomic_write_bytes"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Create ``path`` atomically with the bytes that ``write(file)`` writes.

    Args:
        path: the final file name; its folder must exist.
        write: called with a binary file object open for writing. Exceptions it raises other
            than ``OSError`` (e.g. an encoder's ``ValueError``) are reported as
            "could not encode".

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ImageWriteError: the folder is missing or not writable, the disk is full, the target
            is a folder, or ``write`` failed. No temporary file is left behind.
    """
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise ImageWriteError(path, "a folder with that name already exists")
    if not folder.is_dir():
        if folder.exists():
            raise ImageWriteError(path, f"'{folder}' is not a folder")
        raise ImageWriteError(path, f"the folder '{folder}' does not exist")

    fp, temp = _open_temp(path)
    try:
        with fp:
            write(fp)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(temp, path)
    except OSError as exc:
        _discard(temp)
        raise ImageWriteError(path, _write_reason(exc)) from exc
    except ImageWriteError:
        _discard(temp)
        raise
    except Exception as exc:
        _discard(temp)
        raise ImageWriteError(
            path, f"could not encode the image ({exc or type(exc).__name__})"
        ) from exc
    except BaseException:  # KeyboardInterrupt and friends: clean up, do not wrap
        _discard(temp)
        raise
    _fsync_folder(folder)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Create ``path`` atomically with ``data``; see :func:`atomic_write`."""
    return atomic_write(path, lambda fp: fp.write(data))


def _open_temp(path: Path) -> tuple[BinaryIO, Path]:
    """Create and open a new, uniquely named ``.<name>.<random>.part`` file next to ``path``."""
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            # Mode "x" creates the file with the usual permissions (0o666 minus umask),
            # unlike tempfile.mkstemp's 0o600, so the final file is readable as expected.
            return open(temp, "xb"), temp  # closed by atomic_write
        except FileExistsError:
            continue
        except OSError as exc:
            raise ImageWriteError(path, _write_reason(exc)) from exc


def _discard(temp: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(temp)


def _write_reason(exc: OSError) -> str:
    reason = describe_os_error(exc)
    if reason in ("permission denied", "the operation is not permitted"):
        return f"the folder is not writable ({reason})"
    return reason


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
