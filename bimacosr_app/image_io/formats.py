"""Image formats: which can be read and written, file extensions, and content sniffing.

Format names are Pillow's (``"JPEG"``, ``"PNG"``, ``"WEBP"``, ``"TIFF"``, ``"BMP"``, ``"AVIF"``,
``"HEIF"``). HEIF/AVIF are readable only where the installed Pillow has a decoder for them
(Pillow >= 11.3 ships AVIF; HEIC needs the ``pillow-heif`` plugin to be registered by the
application). Reading is restricted to these formats on purpose: Pillow can open many more
(EPS would start Ghostscript, for instance), which a photo upscaler has no use for.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

from PIL import Image

__all__ = [
    "FORMAT_EXTENSIONS",
    "MAX_OUTPUT_SIDE",
    "WRITABLE_FORMATS",
    "canonical_format",
    "extension_for",
    "format_for_output",
    "format_from_suffix",
    "is_image_path",
    "readable_formats",
    "sniff_format",
    "writable_formats",
]

#: Every format this package knows, with its file extensions (the first one is preferred).
FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "PNG": (".png",),
    "WEBP": (".webp",),
    "TIFF": (".tiff", ".tif"),
    "BMP": (".bmp", ".dib"),
    "AVIF": (".avif",),
    "HEIF": (".heic", ".heif", ".hif"),
}

#: Formats that can be read when the installed Pillow has a decoder for them.
_OPTIONAL_READ = ("AVIF", "HEIF")

#: Formats :func:`~bimacosr_app.image_io.write_image` can produce.
WRITABLE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "TIFF")

#: Largest width or height each writable format can store (check before upscaling: a 4x
#: WebP output is impossible for inputs wider or taller than 4095 pixels).
MAX_OUTPUT_SIDE: dict[str, int] = {
    "PNG": 2**31 - 1,
    "JPEG": 65_500,
    "WEBP": 16_383,
    "TIFF": 2**32 - 1,
}

#: Short output names as used by ``--format`` / the GUI, and what they mean.
_OUTPUT_CHOICES = {
    "png": "PNG",
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "webp": "WEBP",
    "tif": "TIFF",
    "tiff": "TIFF",
}
_OUTPUT_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "TIFF": "tiff"}


def readable_formats() -> dict[str, list[str]]:
    """Formats that can be read with this installation, mapped to their extensions.

    JPEG, PNG, WebP, TIFF and BMP are always there; AVIF and HEIF only when Pillow has a
    decoder registered for them (``bimacosr info`` prints this).
    """
    Image.init()
    return {
        name: list(exts)
        for name, exts in FORMAT_EXTENSIONS.items()
        if name not in _OPTIONAL_READ or name in Image.OPEN
    }


def writable_formats() -> dict[str, list[str]]:
    """Formats :func:`write_image` can produce, mapped to their extensions."""
    return {name: list(FORMAT_EXTENSIONS[name]) for name in WRITABLE_FORMATS}


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like a readable image by its suffix (for folder scanning).

    Hidden names (starting with ``.``) are skipped: they are macOS resource forks
    (``._IMG_1.jpg``) or this package's own unfinished outputs (``.name.xxxx.part``).
    """
    p = Path(path)
    if p.name.startswith("."):
        return False
    suffix = p.suffix.lower()
    return any(suffix in exts for exts in readable_formats().values())


def format_from_suffix(path: str | os.PathLike[str]) -> str | None:
    """The format whose extension ``path`` has (``"photo.JPG"`` -> ``"JPEG"``), else ``None``."""
    suffix = Path(path).suffix.lower()
    for name, exts in FORMAT_EXTENSIONS.items():
        if suffix in exts:
            return name
    return None


def canonical_format(fmt: str) -> str | None:
    """``"jpg"``/``"JPEG"``/``".tif"`` -> ``"JPEG"``/``"TIFF"``; ``None`` if unknown."""
    key = fmt.strip().lower().lstrip(".")
    if key.upper() in FORMAT_EXTENSIONS:
        return key.upper()
    return format_from_suffix(f"x.{key}")


def extension_for(fmt: str) -> str:
    """The output file extension, without dot, for a writable format.

    ``extension_for("JPEG") == "jpg"``; also accepts ``"jpg"``, ``"png"``, ``"tif"``, … .

    Raises:
        ValueError: ``fmt`` is not a writable format.
    """
    name = canonical_format(fmt)
    if name not in _OUTPUT_EXTENSIONS:
        raise ValueError(f"cannot write {fmt!r} images; choose one of {list(_OUTPUT_CHOICES)}")
    return _OUTPUT_EXTENSIONS[name]


def format_for_output(choice: str, input_format: str | None) -> str:
    """The output format for a user choice.

    Args:
        choice: ``"png"``, ``"jpg"``/``"jpeg"``, ``"webp"``, ``"tiff"``/``"tif"`` or ``"same"``.
        input_format: the source's format (``LoadedImage.format``), used by ``"same"``.

    Returns:
        A format name from :data:`WRITABLE_FORMATS`. ``"same"`` keeps the input format when it
        is writable and falls back to lossless PNG otherwise (BMP, AVIF, HEIF, unknown).

    Raises:
        ValueError: ``choice`` is not one of the above.
    """
    key = choice.strip().lower()
    if key == "same":
        name = canonical_format(input_format or "")
        return name if name in WRITABLE_FORMATS else "PNG"
    if key not in _OUTPUT_CHOICES:
        raise ValueError(
            f"unknown output format {choice!r}; choose one of {[*_OUTPUT_CHOICES, 'same']}"
        )
    return _OUTPUT_CHOICES[key]


_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def sniff_format(head: bytes) -> str | None:
    """Recognise a file by its first bytes (at least 16), independent of Pillow.

    Returns a name from :data:`FORMAT_EXTENSIONS`, another well-known name (``"GIF"``,
    ``"JPEG2000"``, ``"PDF"``, …) for files that are images-or-documents we do not read,
    ``"TEXT"`` for text, or ``None`` when the content is not recognised.
    """
    signatures = (
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"\xff\xd8\xff", "JPEG"),
        (b"II*\x00", "TIFF"),
        (b"MM\x00*", "TIFF"),
        (b"II+\x00", "TIFF"),
        (b"MM\x00+", "TIFF"),
        (b"BM", "BMP"),
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"\x00\x00\x00\x0cjP  ", "JPEG2000"),
        (b"\xff\x4f\xff\x51", "JPEG2000"),
        (b"8BPS", "PSD"),
        (b"%PDF", "PDF"),
        (b"\xff\x0a", "JPEG XL"),
        (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    )
    for magic, name in signatures:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return "HEIF"
    try:
        # An incremental decoder tolerates a multi-byte character cut off at the end.
        text = codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return None
    if text and all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return "TEXT"
    return None
