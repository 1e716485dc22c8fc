"""Image I/O for the upscaler: read any supported photo, write the result safely.

Reading (:func:`read_image`) gives upright float32 RGB in ``[0, 1]`` with the alpha plane
kept apart (the model sees RGB only; :func:`resize_alpha` scales the alpha cheaply), plus
the ICC profile and EXIF ready to be written back; a greyscale source is marked ``grey``,
and what was unusual but accepted about a file (a JPEG without its end marker) is in
``warnings``. :func:`probe_image` reads only the header, for planning. Oversized images are
refused from the header, and every failure is reported as an
:class:`ImageReadError`/:class:`ImageWriteError` with a message for the user.

Writing (:func:`write_image`) is atomic: the output appears complete or not at all. It takes
colour ``(H, W, 3)`` or grey ``(H, W)`` pixels. EXIF (orientation 1, new pixel size), the ICC
profile and a provenance record travel along unless ``strip_metadata`` is set;
:func:`read_provenance` reads the record back.

Modules: ``reader``, ``writer``, ``metadata`` (EXIF/ICC/provenance), ``formats``,
``pixels`` (array helpers), ``atomic`` (atomic writes), ``errors``.
"""

from .atomic import atomic_write, atomic_write_bytes
from .errors import (
    CorruptImageError,
    ImageIOError,
    ImageReadError,
    ImageTooLargeError,
    ImageWriteError,
    UnsupportedFormatError,
)
from .formats import (
    FORMAT_EXTENSIONS,
    MAX_OUTPUT_SIDE,
    WRITABLE_FORMATS,
    extension_for,
    format_for_output,
    is_image_path,
    readable_formats,
    writable_formats,
)
from .metadata import read_provenance
from .pixels import resize_alpha
from .reader import DEFAULT_MAX_PIXELS, ImageInfo, LoadedImage, probe_image, read_image
from .writer import write_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMAT_EXTENSIONS",
    "MAX_OUTPUT_SIDE",
    "WRITABLE_FORMATS",
    "CorruptImageError",
    "ImageIOError",
    "ImageInfo",
    "ImageReadError",
    "ImageTooLargeError",
    "ImageWriteError",
    "LoadedImage",
    "UnsupportedFormatError",
    "atomic_write",
    "atomic_write_bytes",
    "extension_for",
    "format_for_output",
    "is_image_path",
    "probe_image",
    "read_image",
    "read_provenance",
    "readable_formats",
    "resize_alpha",
    "writable_formats",
    "write_image",
]
