"""Exceptions raised by :mod:`bimacosr_app.image_io`.

Every error names the file and says in plain words what is wrong, so the CLI and the GUI
can show ``str(error)`` to the user unchanged::

    ImageIOError
    ├── ImageReadError            the input could not be read (missing, folder, no permission)
    │   ├── UnsupportedFormatError    not an image, or a format this build cannot decode
    │   ├── CorruptImageError         empty, truncated or damaged file
    │   └── ImageTooLargeError        pixel count above the limit (checked from the header)
    └── ImageWriteError           the output could not be written (disk full, not writable, …)

Invalid arguments (wrong array shape, unknown bit depth) are programming errors and raise
``ValueError``/``TypeError`` instead.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = [
    "CorruptImageError",
    "ImageIOError",
    "ImageReadError",
    "ImageTooLargeError",
    "ImageWriteError",
    "UnsupportedFormatError",
    "describe_os_error",
]


class ImageIOError(Exception):
    """Base class: an image file could not be read or written.

    Attributes:
        path: the file concerned.
        reason: what is wrong, in words meant for the user (without the file name).
    """

    verb = "access"

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Cannot {self.verb} '{self.path}': {reason}")


class ImageReadError(ImageIOError):
    """The input image could not be read."""

    verb = "read"


class UnsupportedFormatError(ImageReadError):
    """The file is not an image, or its format cannot be decoded by this installation."""


class CorruptImageError(ImageReadError):
    """The file is empty, truncated or otherwise damaged."""


class ImageTooLargeError(ImageReadError):
    """The image has more pixels than allowed; refused before any pixel is decoded."""


class ImageWriteError(ImageIOError):
    """The output image could not be written; no partial file is left behind."""

    verb = "write"


_ERRNO_REASONS = {
    errno.ENOSPC: "the disk is full (no space left on the device)",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted",
    errno.EROFS: "the file system is read-only",
    errno.ENOENT: "the file or folder does not exist",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EFBIG: "the file is too large for the file system",
    errno.EIO: "an input/output error occurred (failing disk or removed drive?)",
    errno.ELOOP: "it is a symbolic link that loops (it leads back to itself)",
}


def describe_os_error(exc: OSError) -> str:
    """Turn an ``OSError`` into a short user-facing reason ("the disk is full", …)."""
    reason = _ERRNO_REASONS.get(exc.errno or 0)
    if reason is not None:
        return reason
    return exc.strerror or str(exc) or type(exc).__name__
