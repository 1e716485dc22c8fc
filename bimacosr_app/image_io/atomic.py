"""Atomic image writing: :mod:`bimacosr_app.atomic` with the messages users get.

The file is either complete under its final name, or not there at all (see
:mod:`bimacosr_app.atomic`). Every failure is an
:class:`~bimacosr_app.image_io.errors.ImageWriteError` that explains what went wrong; an
existing file under the final name is left untouched and no temporary file is left behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .. import atomic
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
    try:
        return atomic.atomic_write(path, write)
    except atomic.TargetInUseError as exc:  # Windows: a viewer holds the file
        raise ImageWriteError(
            path, "the existing file is open in another program (close it there and try "
            "again); it was left unchanged") from exc
    except OSError as exc:
        raise ImageWriteError(path, _write_reason(exc)) from exc
    except ImageWriteError:
        raise
    except Exception as exc:
        raise ImageWriteError(
            path, f"could not encode the image ({exc or type(exc).__name__})"
        ) from exc


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Create ``path`` atomically with ``data``; see :func:`atomic_write`."""
    return atomic_write(path, lambda fp: fp.write(data))


def _write_reason(exc: OSError) -> str:
    reason = describe_os_error(exc)
    if reason in ("permission denied", "the operation is not permitted"):
        return f"the folder is not writable ({reason})"
    return reason
