"""Reading images: header probing and full decoding to float32 RGB plus a separate alpha.

Decoding goes through Pillow, except for 16-bit colour PNG/TIFF, which Pillow can only
deliver as 8 bits: those are decoded with OpenCV (``IMREAD_UNCHANGED``, BGR(A) -> RGB(A)).
The pixel limit is checked from the header before any pixel is decoded; Pillow's own
decompression-bomb error is reported as :class:`ImageTooLargeError` too.

Truncated files are reported as :class:`CorruptImageError`, not padded with grey. This relies
on Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` being left at its default ``False``. The one
exception is a JPEG that lacks only its end marker (some cameras and programs write them; other
viewers show them whole): it is accepted, with a warning in ``LoadedImage.warnings``, when
its data decodes completely (Pillow decodes some by itself; for the others
:func:`_decode_jpeg_without_end_marker` says how that is known).
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageCms

from .errors import (
    CorruptImageError,
    ImageReadError,
    ImageTooLargeError,
    UnsupportedFormatError,
    describe_os_error,
)
from .formats import format_from_suffix, readable_formats, sniff_format
from .metadata import exif_for_output, orientation_of, rgb_icc_profile, srgb_profile
from .pixels import apply_orientation, to_float32

__all__ = ["DEFAULT_MAX_PIXELS", "ImageInfo", "LoadedImage", "probe_image", "read_image"]

log = logging.getLogger(__name__)

#: Default limit on the pixel count of an input image (100 megapixels).
DEFAULT_MAX_PIXELS = 100_000_000

#: Errors Pillow's decoders raise for damaged or truncated data.
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, struct.error, zlib.error)


@dataclass(frozen=True)
class ImageInfo:
    """What the header says about an image (nothing decoded yet)."""

    path: Path
    width: int  #: after EXIF orientation
    height: int  #: after EXIF orientation
    format: str  #: Pillow format name: "PNG", "JPEG", "WEBP", "TIFF", "BMP", …
    mode: str  #: Pillow mode of the file ("RGB", "RGBA", "L", "P", "CMYK", "I;16", …)
    bit_depth: int  #: 8 or 16 bits per sample in the file
    has_alpha: bool  #: alpha channel, transparent palette entry or colour key
    orientation: int  #: EXIF orientation (1 = upright), applied by read_image

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass
class LoadedImage:
    """A decoded image, upright, as float32 RGB in ``[0, 1]`` with alpha kept apart."""

    rgb: np.ndarray  #: (H, W, 3) float32 in [0, 1], EXIF orientation applied
    alpha: np.ndarray | None  #: (H, W) float32 in [0, 1], or None when opaque
    bit_depth: int  #: 8 or 16 (of the source)
    format: str  #: "PNG", "JPEG", "WEBP", "TIFF", "BMP", …
    icc_profile: bytes | None  #: RGB ICC profile of ``rgb`` (sRGB when none)
    exif: bytes | None  #: EXIF with orientation reset to 1, ready to write
    path: Path
    grey: bool = False  #: a greyscale source: the three channels of ``rgb`` are equal
    #: what was unusual but accepted about the file, in words for the user
    warnings: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def probe_image(
    path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> ImageInfo:
    """Read only the header of an image: size, format, mode, bit depth, alpha.

    Cheap enough to call for every file of a folder before deciding what to process.

    Args:
        path: the image file.
        max_pixels: refuse images with more pixels than this (``None``: no limit of ours;
            Pillow's decompression-bomb limit still applies).

    Raises:
        ImageReadError: missing file, folder, permission denied; or one of its subclasses
            :class:`UnsupportedFormatError`, :class:`CorruptImageError`,
            :class:`ImageTooLargeError`.
    """
    path = Path(path)
    with _open_image(path, max_pixels) as (im, _fp):
        orientation = orientation_of(_exif_of(im))
        width, height = _stored_size(im)
        if orientation >= 5:  # 5..8 swap width and height
            width, height = height, width
        return ImageInfo(
            path=path,
            width=width,
            height=height,
            format=str(im.format),
            mode=im.mode,
            bit_depth=_bit_depth(im),
            has_alpha=im.has_transparency_data,
            orientation=orientation,
        )


def read_image(
    path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Decode an image to upright float32 RGB in ``[0, 1]``, alpha split off.

    Greyscale, palette (with transparency), LA, CMYK (ICC-converted to sRGB when the file has
    a CMYK profile), 16-bit greyscale and 16-bit RGB(A) are all converted to RGB; greyscale
    sources (1-bit, 8- and 16-bit grey, with or without alpha) are marked ``grey``. Only the
    first frame of multi-frame files is read. The file is opened read-only and never modified.

    Args:
        path: the image file.
        max_pixels: see :func:`probe_image`.

    Raises:
        ImageReadError: or a subclass, as for :func:`probe_image`; :class:`CorruptImageError`
            also for truncated or damaged pixel data.
    """
    path = Path(path)
    warnings_: list[str] = []
    with _open_image(path, max_pixels) as (im, fp):
        bit_depth = _bit_depth(im)
        icc = im.info.get("icc_profile")
        grey = im.mode in _GREY_MODES
        if bit_depth == 16 and im.mode in ("RGB", "RGBA", "LA"):
            rgb, alpha = _decode_with_opencv(path, fp, im)  # pixels as stored
            orientation = orientation_of(_exif_of(im))
        else:
            pixels = im
            try:
                im.load()
            except _DECODE_ERRORS as exc:
                pixels = _decode_jpeg_without_end_marker(fp) if im.format == "JPEG" else None
                if pixels is None:
                    raise CorruptImageError(
                        path, f"the {im.format} data is truncated or damaged ({exc})"
                    ) from exc
            if im.format == "JPEG" and not _ends_with_end_marker(fp):
                warnings_.append(f"'{path.name}' lacks the JPEG end marker; all of its image "
                                 "data was there and was used")
            try:
                rgb, alpha, icc = _pillow_to_arrays(pixels, icc)
            except ValueError as exc:  # no conversion to RGB from this mode
                raise UnsupportedFormatError(
                    path, f"{im.mode} images are not supported ({exc})"
                ) from exc
            # Asked after loading: recent Pillow versions rotate TIFFs while loading and then
            # drop the tag, and a PNG's eXIf chunk may only be found after the pixel data.
            orientation = orientation_of(_exif_of(im))
        exif_bytes = exif_for_output(_exif_of(im))  # reads TIFF sub-IFDs: file still open

    rgb = to_float32(apply_orientation(rgb, orientation))
    if alpha is not None:
        alpha = to_float32(apply_orientation(alpha, orientation))
    return LoadedImage(
        rgb=rgb,
        alpha=alpha,
        bit_depth=bit_depth,
        format=str(im.format),
        icc_profile=rgb_icc_profile(icc),
        exif=exif_bytes,
        path=path,
        grey=grey,
        warnings=warnings_,
    )


#: Pillow modes of greyscale images (bilevel, 8-bit, 16-bit, with alpha).
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N", "I"})
#: Bytes put after a JPEG's data to tell complete data from cut data (no 0xFF: no marker, but
#: for the stuffed 0xFF 0x00, which reads as eight 1-bits).
_JPEG_FOLLOWERS = (bytes(64), b"\xff\x00" * 64, bytes((i * 151 + 7) % 255 for i in range(256)),
                   bytes((i * 97 + 31) % 255 for i in range(256)))
_JPEG_END = b"\xff\xd9"


def _decode_jpeg_without_end_marker(fp: BinaryIO) -> Image.Image | None:
    """The pixels of a sequential JPEG whose only defect is a missing end marker, else
    ``None``.

    libjpeg ends a scan that runs out of data by decoding zero bits, so cut data decodes
    "successfully" once an end marker is appended. Complete data is told from cut data by
    what follows it: complete data decodes to the same pixels whatever bytes come between it
    and the end marker (libjpeg skips them), while cut data reads them as its missing blocks.
    The data is decoded followed directly by the marker and followed by four different runs
    of bytes; all five must agree. (A file cut within the last bytes of its last row of blocks
    can pass when those bytes barely change it.) Progressive files and files with restart
    markers are refused: a cut between their scans or intervals is skipped over like extra
    bytes, so the test cannot see it.
    """
    fp.seek(0)
    data = fp.read()
    if data.endswith((_JPEG_END, b"\xff")) or not _sequential_without_restarts(data):
        return None
    try:
        decoded = [Image.open(io.BytesIO(data + follower + _JPEG_END), formats=["JPEG"])
                   for follower in (b"", *_JPEG_FOLLOWERS)]
        pixels = [image.tobytes() for image in decoded]
    except _DECODE_ERRORS:
        return None
    return decoded[0] if pixels.count(pixels[0]) == len(pixels) else None


def _ends_with_end_marker(fp: BinaryIO) -> bool:
    """Whether the JPEG open in ``fp`` has an end marker in its last 64 KiB (other data may
    follow the marker: a second image, a maker's trailer)."""
    size = fp.seek(0, os.SEEK_END)
    fp.seek(max(0, size - (1 << 16)))
    return _JPEG_END in fp.read()


def _sequential_without_restarts(data: bytes) -> bool:
    """Whether the JPEG's header segments, up to its first scan, declare a baseline or
    extended sequential frame and no restart interval."""
    sequential, offset = False, 2
    while offset + 4 <= len(data) and data[offset] == 0xFF:
        marker = data[offset + 1]
        (length,) = struct.unpack_from(">H", data, offset + 2)
        if marker == 0xDA:  # start of scan
            return sequential
        restarts = marker == 0xDD and data[offset + 4:offset + 6] != b"\0\0"  # an interval
        if marker in _OTHER_FRAMES or restarts:
            return False
        sequential = sequential or marker in (0xC0, 0xC1)
        offset += 2 + length
    return False


#: Start-of-frame markers of progressive, lossless, hierarchical and arithmetic-coded JPEGs.
_OTHER_FRAMES = frozenset({0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


@contextmanager
def _open_image(path: Path, max_pixels: int | None) -> Iterator[tuple[Image.Image, BinaryIO]]:
    """Open ``path`` with Pillow (header only) and check its size; map every failure."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ImageReadError(path, describe_os_error(exc)) from exc
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(path, "it is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageReadError(path, "it is not a regular file")
    if st.st_size == 0:
        raise CorruptImageError(path, "the file is empty (0 bytes)")
    try:
        fp = open(path, "rb")  # noqa: SIM115 -- closed below, also on errors
    except OSError as exc:
        raise ImageReadError(path, describe_os_error(exc)) from exc
    with fp, warnings.catch_warnings():
        # Pillow warns about images above ~89 MP, when opening and again when loading TIFFs;
        # the size is checked against max_pixels below, so its warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(fp, formats=list(readable_formats()))
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(path, _bomb_reason(str(exc), max_pixels)) from exc
        except Image.UnidentifiedImageError as exc:
            fp.seek(0)
            raise _unidentified(path, fp.read(64)) from exc
        except OSError as exc:
            if exc.errno is not None:  # the system's error, not the decoder's
                raise ImageReadError(path, describe_os_error(exc)) from exc
            fp.seek(0)
            kind = sniff_format(fp.read(64))
            raise CorruptImageError(
                path, f"the file starts like a {kind or 'image'} file but ends inside its "
                f"header ({st.st_size} bytes): it is truncated or damaged ({exc})") from exc
        with im:
            width, height = im.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageTooLargeError(path, _too_large(width * height, max_pixels, im.size))
            yield im, fp


def _too_large(pixels: int, limit: int, size: tuple[int, int] | None = None) -> str:
    dims = f" ({size[0]}x{size[1]})" if size else ""
    return (
        f"the image has {pixels / 1e6:.1f} megapixels{dims}, more than the limit of "
        f"{limit / 1e6:g} megapixels"
    )


def _bomb_reason(message: str, max_pixels: int | None) -> str:
    """Reason for Pillow's DecompressionBombError, whose message is the only size we get."""
    match = re.search(r"\((\d+) pixels\).*?limit of (\d+) pixels", message)
    if match is None:
        return "the image is too large to decode safely (decompression bomb protection)"
    pixels, pillow_limit = int(match[1]), int(match[2])
    if max_pixels is None or max_pixels > pillow_limit:
        return (
            f"{_too_large(pixels, pillow_limit)} that Pillow accepts "
            "(raise PIL.Image.MAX_IMAGE_PIXELS to allow larger images)"
        )
    return _too_large(pixels, max_pixels)


def _unidentified(path: Path, head: bytes) -> ImageReadError:
    """Explain why Pillow could not identify ``path`` from its first bytes."""
    kind = sniff_format(head)
    readable = readable_formats()
    supported = ", ".join(readable)
    claimed = format_from_suffix(path)
    despite = f" (despite its '{path.suffix}' name)" if claimed else ""
    if kind in readable:
        return CorruptImageError(
            path, f"the file starts like a {kind} image but its header is damaged or incomplete"
        )
    if kind in ("AVIF", "HEIF"):
        return UnsupportedFormatError(
            path, f"{kind} images cannot be decoded by this installation (no {kind} decoder)"
        )
    if kind == "TEXT":
        return UnsupportedFormatError(path, f"the file contains text, not image data{despite}")
    if kind is not None:
        return UnsupportedFormatError(
            path, f"{kind} files are not supported{despite}; supported formats: {supported}"
        )
    return UnsupportedFormatError(
        path, f"the content is not a recognised image format{despite}; supported: {supported}"
    )


def _rawmode(im: Image.Image) -> str:
    """The raw sample layout of the first tile ("RGB;16B", "I;16N", …), or ""."""
    if not im.tile:
        return ""
    args = im.tile[0].args
    if isinstance(args, str):
        return args
    return str(args[0]) if isinstance(args, tuple) and args else ""


def _bit_depth(im: Image.Image) -> int:
    """16 when the file stores 16 bits per sample (Pillow's mode may say 8), else 8."""
    return 16 if im.mode.startswith("I;16") or ";16" in _rawmode(im) else 8


def _stored_size(im: Image.Image) -> tuple[int, int]:
    """Width and height as stored in the file, before orientation.

    Recent Pillow versions report a TIFF's ``size`` already turned upright.
    """
    if im.format == "TIFF":
        return int(im.tag_v2[256]), int(im.tag_v2[257])  # ImageWidth, ImageLength
    return im.size


def _exif_of(im: Image.Image) -> Image.Exif:
    """The image's EXIF, without decoding pixels just to look for it.

    Pillow's PNG plugin decodes the whole image to find an ``eXIf`` chunk placed after the
    pixel data; such late chunks are only seen once the image has been loaded anyway.
    """
    if im.format == "PNG" and "exif" not in im.info:
        return Image.Exif()
    return im.getexif()


def _decode_with_opencv(
    path: Path, fp: BinaryIO, im: Image.Image
) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode a 16-bit colour PNG/TIFF with OpenCV -> (uint16 RGB, uint16 alpha or None).

    The pixels come back as stored: OpenCV's TIFF decoder would apply the Orientation tag
    itself (depending on its version), so the tag is set to 1 in the copy it decodes.
    """
    fp.seek(0)
    data = bytearray(fp.read())
    if im.format == "TIFF":
        _neutralise_tiff_orientation(data)
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    stored_shape = _stored_size(im)[::-1]
    if pixels is None or pixels.dtype != np.uint16 or pixels.shape[:2] != stored_shape:
        raise CorruptImageError(path, f"the 16-bit {im.format} data is truncated or damaged")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    channels = pixels.shape[2]
    grey = channels in (1, 2)  # grey (+ alpha) TIFF
    rgb = np.repeat(pixels[..., :1], 3, axis=2) if grey else pixels[..., 2::-1]  # BGR -> RGB
    alpha = pixels[..., channels - 1] if channels in (2, 4) else None
    return rgb, alpha


def _neutralise_tiff_orientation(data: bytearray) -> None:
    """Set the Orientation tag of a classic TIFF's first IFD to 1, in place, if present."""
    endian = {b"II": "<", b"MM": ">"}.get(bytes(data[:2]))
    if endian is None or len(data) < 8:
        return
    try:
        (ifd,) = struct.unpack_from(endian + "I", data, 4)
        (count,) = struct.unpack_from(endian + "H", data, ifd)
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, tag_type = struct.unpack_from(endian + "HH", data, entry)
            if tag == 0x0112 and tag_type == 3:  # Orientation, SHORT
                struct.pack_into(endian + "H", data, entry + 8, 1)
                return
    except struct.error:
        return  # damaged; the decoder will report it


def _pillow_to_arrays(
    im: Image.Image, icc: bytes | None
) -> tuple[np.ndarray, np.ndarray | None, bytes | None]:
    """Loaded Pillow image -> (uint8/uint16 RGB, alpha or None, ICC profile of the RGB).

    Raises:
        ValueError: the mode cannot be converted to RGB (32-bit samples, …).
    """
    mode = im.mode
    if mode.startswith("I;16") or (mode == "I" and _bit_depth(im) == 16):
        grey = np.asarray(im).astype(np.uint16)
        key = im.info.get("transparency")
        alpha = (grey != key).astype(np.uint8) * np.uint8(255) if isinstance(key, int) else None
        return np.repeat(grey[..., None], 3, axis=2), alpha, icc
    if mode in ("I", "F"):
        raise ValueError("32-bit integer or floating-point samples")
    if mode == "CMYK":
        rgb_im, icc = _cmyk_to_rgb(im, icc)
        return np.asarray(rgb_im), None, icc
    if im.has_transparency_data:
        rgba = np.asarray(im.convert("RGBA"))
        return rgba[..., :3], rgba[..., 3], icc
    return np.asarray(im if mode == "RGB" else im.convert("RGB")), None, icc


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """CMYK -> sRGB through the embedded CMYK profile when there is one, else naively."""
    if icc and icc[16:20] == b"CMYK":
        try:
            cmyk_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            srgb = ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile()))
            rgb = ImageCms.profileToProfile(
                im,
                cmyk_profile,
                srgb,
                renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                outputMode="RGB",
                flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
            )
        except (ImageCms.PyCMSError, OSError) as exc:
            log.warning("CMYK profile unusable, converting without it: %s", exc)
        else:
            assert rgb is not None  # profileToProfile returns None only with inPlace=True
            return rgb, srgb_profile()
    return im.convert("RGB"), None
