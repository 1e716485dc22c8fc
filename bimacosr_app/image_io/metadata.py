r"""EXIF, ICC and provenance metadata.

EXIF travels from the input to the output as bytes (``LoadedImage.exif``) prepared by
:func:`exif_for_output`: only descriptive tags are kept (camera, date, author, copyright,
GPS, the Exif sub-IFD), the orientation is reset to 1 because the pixels are already
upright, and stale parts are dropped (thumbnail IFD1, Interop pointer, TIFF layout tags).
:func:`build_exif` then stamps the output size and the provenance when writing.

Provenance (a JSON-serialisable dict: app version, model hash, scale, tiling, backend) is
stored as follows, and :func:`read_provenance` finds it again:

* PNG: an ``iTXt`` chunk with keyword ``bimacosr`` holding the JSON as UTF-8, placed before
  the pixel data, plus a ``tEXt`` chunk ``Software``.
* JPEG, WebP, TIFF: the EXIF ``UserComment`` (Exif sub-IFD, tag 0x9286) holds
  ``b"ASCII\0\0\0bimacosr:"`` + the JSON (ASCII only: other characters are ``\u``-escaped),
  and ``Software`` (IFD0, tag 0x0131) says ``"BiMaCoSR Upscaler <version>"``. An existing
  UserComment of the source is replaced. In TIFF the Exif sub-IFD hangs off the image's
  own first IFD.

``read_provenance`` walks the file's container structure directly (PNG chunks, JPEG
segments, RIFF chunks, TIFF IFDs) without decoding pixels or applying a pixel limit, so it
works on 4x outputs that are far larger than any accepted input.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

from PIL import ExifTags, Image, ImageCms

from .. import __version__
from .errors import ImageReadError, describe_os_error
from .formats import sniff_format

__all__ = [
    "PROVENANCE_KEY",
    "SOFTWARE",
    "build_exif",
    "decode_provenance",
    "encode_provenance",
    "exif_for_output",
    "orientation_of",
    "read_provenance",
    "rgb_icc_profile",
    "srgb_profile",
    "user_comment_for",
]

log = logging.getLogger(__name__)

#: PNG text keyword / UserComment prefix identifying our provenance record.
PROVENANCE_KEY = "bimacosr"
#: Value of the ``Software`` tag/chunk in outputs that carry provenance.
SOFTWARE = f"BiMaCoSR Upscaler {__version__}"

_USER_COMMENT = 0x9286
_PIXEL_X = 0xA002
_PIXEL_Y = 0xA003
_INTEROP = 0xA005
_ASCII_CODE = b"ASCII\x00\x00\x00"
_PREFIX = PROVENANCE_KEY.encode("ascii") + b":"

#: IFD0 tags carried from input to output: the descriptive tags of the EXIF standard and the
#: Windows rating/XP tags. Everything else in IFD0 describes the source file's layout
#: (strips, compression, bits per sample, …, notably for TIFF inputs) and must not be copied.
_IFD0_KEEP = frozenset(
    {
        0x010E,  # ImageDescription
        0x010F,  # Make
        0x0110,  # Model
        0x0112,  # Orientation (reset to 1)
        0x011A,  # XResolution
        0x011B,  # YResolution
        0x0128,  # ResolutionUnit
        0x0131,  # Software
        0x0132,  # DateTime
        0x013B,  # Artist
        0x013E,  # WhitePoint
        0x013F,  # PrimaryChromaticities
        0x4746,  # Rating
        0x4749,  # RatingPercent
        0x8298,  # Copyright
        0x9C9B,  # XPTitle
        0x9C9C,  # XPComment
        0x9C9D,  # XPAuthor
        0x9C9E,  # XPKeywords
        0x9C9F,  # XPSubject
    }
)

_EXIF_ERRORS = (ValueError, TypeError, KeyError, struct.error, OSError)


def orientation_of(exif: Image.Exif) -> int:
    """The EXIF orientation (1..8); 1 when absent or invalid."""
    value = exif.get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def exif_for_output(exif: Image.Exif) -> bytes | None:
    """Prepare a source's EXIF for copying into the output (see module docstring).

    Returns ``None`` when there is nothing worth keeping, or when the EXIF is too damaged to
    re-serialise (logged; the image is still usable without it).
    """
    if not exif:
        return None
    try:
        out = Image.Exif()
        for tag, value in exif.items():
            if tag in _IFD0_KEEP:
                out[tag] = value
        sub_ifd = {
            tag: value
            for tag, value in exif.get_ifd(ExifTags.IFD.Exif).items()
            if tag not in (_INTEROP, _PIXEL_X, _PIXEL_Y)
        }
        if sub_ifd:
            out[ExifTags.IFD.Exif] = sub_ifd
        gps_ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
        if gps_ifd:
            out[ExifTags.IFD.GPSInfo] = dict(gps_ifd)
        if not out:
            return None
        out[ExifTags.Base.Orientation] = 1
        return out.tobytes()
    except _EXIF_ERRORS as exc:
        log.warning("dropping unreadable EXIF data: %s", exc)
        return None


def encode_provenance(provenance: dict[str, Any]) -> str:
    """Serialise a provenance dict as compact, ASCII-only JSON (non-JSON values via ``str``)."""
    return json.dumps(provenance, sort_keys=True, separators=(",", ":"), default=str)


def decode_provenance(text: str | bytes | None) -> dict[str, Any] | None:
    """Parse provenance JSON; ``None`` when absent or not a JSON object."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def user_comment_for(provenance: dict[str, Any]) -> bytes:
    """The EXIF ``UserComment`` value carrying ``provenance``."""
    return _ASCII_CODE + _PREFIX + encode_provenance(provenance).encode("ascii")


def _provenance_from_user_comment(value: object) -> dict[str, Any] | None:
    if isinstance(value, str):
        value = value.encode("latin-1", "replace")
    if not isinstance(value, bytes):
        return None
    if value.startswith(_ASCII_CODE):
        value = value[len(_ASCII_CODE) :]
    if not value.startswith(_PREFIX):
        return None
    return decode_provenance(value[len(_PREFIX) :])


def build_exif(
    base: bytes | None, width: int, height: int, provenance: dict[str, Any] | None
) -> Image.Exif | None:
    """The EXIF to write into an output of ``width`` x ``height`` pixels.

    Starts from ``base`` (``LoadedImage.exif``), sets Orientation = 1 and
    PixelXDimension/PixelYDimension to the output size, and adds ``Software`` and the
    provenance ``UserComment``. Returns ``None`` when there is neither EXIF nor provenance.
    """
    if base is None and provenance is None:
        return None
    exif = Image.Exif()
    if base:
        exif.load(base)
    exif[ExifTags.Base.Orientation] = 1
    sub_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    sub_ifd[_PIXEL_X] = width
    sub_ifd[_PIXEL_Y] = height
    if provenance is not None:
        exif[ExifTags.Base.Software] = SOFTWARE
        sub_ifd[_USER_COMMENT] = user_comment_for(provenance)
    return exif


@cache
def srgb_profile() -> bytes:
    """An sRGB ICC profile (little-cms built-in), e.g. for CMYK inputs converted to sRGB."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def rgb_icc_profile(profile: bytes | None) -> bytes | None:
    """``profile`` if it is an RGB ICC profile, else ``None``.

    Grey and CMYK profiles describe data we no longer have once the image is RGB; writing
    them next to RGB pixels would make viewers show wrong colours.
    """
    if profile and len(profile) >= 128 and profile[16:20] == b"RGB ":
        return profile
    return None


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The provenance dict stored by :func:`write_image`, or ``None`` if the file has none.

    Reads metadata only (no pixels, no size limit).

    Raises:
        ImageReadError: the file cannot be opened (missing, a folder, no permission).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fp:
            kind = sniff_format(fp.read(32))
            fp.seek(0)
            if kind == "PNG":
                return decode_provenance(_png_text(fp, PROVENANCE_KEY))
            exif = _read_exif(fp, kind)
    except OSError as exc:
        raise ImageReadError(path, describe_os_error(exc)) from exc
    if exif is None:
        return None
    try:
        return _provenance_from_user_comment(exif.get_ifd(ExifTags.IFD.Exif).get(_USER_COMMENT))
    except _EXIF_ERRORS:
        return None


def _read_exif(fp: BinaryIO, kind: str | None) -> Image.Exif | None:
    """The EXIF of a JPEG, WebP or TIFF file open in ``fp``; ``None`` if absent or unreadable."""
    exif = Image.Exif()
    try:
        if kind == "TIFF":
            exif.load_from_fp(fp)
            exif.get_ifd(ExifTags.IFD.Exif)  # reads the sub-IFD while fp is still open
            return exif
        data = _jpeg_exif(fp) if kind == "JPEG" else _webp_exif(fp) if kind == "WEBP" else None
        if data is None:
            return None
        exif.load(data)
        return exif
    except _EXIF_ERRORS:
        return None


def _png_text(fp: BinaryIO, keyword: str) -> str | None:
    """Text of the first ``tEXt``/``iTXt`` chunk named ``keyword`` in a PNG file."""
    fp.seek(8)
    while True:
        header = fp.read(8)
        if len(header) < 8:
            return None
        length, chunk_type = struct.unpack(">I4s", header)
        if chunk_type == b"IEND":
            return None
        if chunk_type not in (b"tEXt", b"iTXt"):
            fp.seek(length + 4, os.SEEK_CUR)
            continue
        data = fp.read(length)
        fp.seek(4, os.SEEK_CUR)
        name, _, rest = data.partition(b"\x00")
        if name != keyword.encode("latin-1"):
            continue
        try:
            if chunk_type == b"tEXt":
                return rest.decode("latin-1")
            compressed = rest[0]  # rest[1] is the compression method, always zlib
            text = rest[2:].split(b"\x00", 2)[2]  # skip language tag and translated keyword
            return (zlib.decompress(text) if compressed else text).decode("utf-8")
        except (IndexError, zlib.error, UnicodeDecodeError):
            return None


def _jpeg_exif(fp: BinaryIO) -> bytes | None:
    """Payload of the EXIF APP1 segment of a JPEG file."""
    fp.seek(2)
    while True:
        header = fp.read(4)
        if len(header) < 4 or header[0] != 0xFF or header[1] in (0xD9, 0xDA):
            return None  # end of file, or of the header segments (EOI / start of scan)
        length = struct.unpack(">H", header[2:])[0]
        if header[1] == 0xE1:
            data = fp.read(length - 2)
            if data.startswith(b"Exif\x00\x00"):
                return data
        else:
            fp.seek(length - 2, os.SEEK_CUR)


def _webp_exif(fp: BinaryIO) -> bytes | None:
    """Payload of the ``EXIF`` chunk of a WebP (RIFF) file."""
    fp.seek(12)
    while True:
        header = fp.read(8)
        if len(header) < 8:
            return None
        fourcc, size = struct.unpack("<4sI", header)
        if fourcc == b"EXIF":
            return fp.read(size)
        fp.seek(size + (size & 1), os.SEEK_CUR)
