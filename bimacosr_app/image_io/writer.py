"""Writing images: PNG, JPEG, WebP and TIFF, atomically, with metadata and provenance.

=======  ======  =========================================================================
Format   Depth   Notes
=======  ======  =========================================================================
PNG      8, 16   OpenCV encoder (zlib level 3: ~2.5x faster than 6, ~10 % larger files)
                 + our own iCCP/eXIf/tEXt/iTXt chunks (OpenCV writes no metadata)
JPEG     8       Pillow; 4:4:4 chroma at quality >= 90, else 4:2:0; alpha is composited
                 onto white (JPEG has no alpha)
WebP     8       Pillow; lossy at ``quality``, lossless when quality == 100 or ``lossless``;
                 at most 16383 x 16383 pixels (see ``MAX_OUTPUT_SIDE``)
TIFF     8, 16   own baseline writer (Pillow cannot write 16-bit RGB): Adobe Deflate +
                 horizontal predictor, strips compressed in parallel, tags serialised by
                 Pillow's ImageFileDirectory_v2
=======  ======  =========================================================================

JPEG and WebP ignore ``bit_depth=16`` (they are 8-bit formats). Grey pixels (an ``(H, W)``
array) are stored as one channel by PNG, JPEG and TIFF; with alpha (PNG) or as WebP (which has
no grey mode) as three equal colour channels. An ICC profile is embedded only where its colour
space fits the channels written (RGB or GRAY). See :mod:`~bimacosr_app.image_io.metadata` for
where EXIF, ICC and provenance go.
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np
from PIL import ExifTags, Image, TiffImagePlugin

from .atomic import atomic_write
from .errors import ImageWriteError
from .formats import MAX_OUTPUT_SIDE, WRITABLE_FORMATS, canonical_format, format_from_suffix
from .metadata import PROVENANCE_KEY, SOFTWARE, build_exif, encode_provenance
from .pixels import composite_on_white, quantize

__all__ = ["write_image"]

_PNG_LEVEL = 3
_TIFF_LEVEL = 3
_TIFF_STRIP_BYTES = 1 << 20


def write_image(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    fmt: str | None = None,
    quality: int = 95,
    bit_depth: int = 8,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    provenance: dict[str, Any] | None = None,
    strip_metadata: bool = False,
    lossless: bool = False,
) -> Path:
    """Encode an image and write it atomically (see :mod:`~bimacosr_app.image_io.atomic`).

    Args:
        path: output file; its folder must exist. An existing file is replaced only once the
            new one is complete.
        pixels: ``(H, W, 3)`` colour or ``(H, W)`` grey; float (clipped to ``[0, 1]``),
            ``uint8`` or ``uint16``.
        alpha: optional ``(H, W)`` plane, same conventions. Stored by PNG, WebP and TIFF;
            JPEG output is composited onto white instead.
        fmt: ``"PNG"``, ``"JPEG"``, ``"WEBP"`` or ``"TIFF"`` (also ``"jpg"``, …); by default
            taken from the suffix of ``path``.
        quality: 1..100, for JPEG and lossy WebP.
        bit_depth: 8 or 16, for PNG and TIFF (JPEG and WebP are always 8-bit).
        icc_profile: ICC profile to embed (``LoadedImage.icc_profile``); left out when its
            colour space is not that of the pixels.
        exif: EXIF to embed (``LoadedImage.exif``); orientation is set to 1 and the pixel
            dimensions to the output size.
        provenance: JSON-serialisable dict recorded in the file (see :func:`read_provenance`).
        strip_metadata: write no EXIF, ICC profile or provenance at all.
        lossless: lossless WebP regardless of ``quality``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ImageWriteError: unsupported output format, image too large for the format, or the
            file could not be written (disk full, folder not writable, …).
        ValueError: malformed arguments (array shapes, bit depth, quality).
    """
    path = Path(path)
    name = _output_format(path, fmt)
    _check_arrays(pixels, alpha)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    height, width = pixels.shape[:2]
    limit = MAX_OUTPUT_SIDE[name]
    if max(width, height) > limit:
        raise ImageWriteError(
            path,
            f"{name} cannot store {width}x{height} pixels (at most {limit} per side); "
            "choose PNG or TIFF",
        )
    if strip_metadata:
        icc_profile = exif = provenance = None
    if pixels.ndim == 2 and (name == "WEBP" or (alpha is not None and name == "PNG")):
        pixels = np.repeat(pixels[..., None], 3, axis=2)  # no grey (+ alpha) mode here
    icc_profile = _fitting_profile(icc_profile, grey=pixels.ndim == 2)

    if name == "JPEG":
        if alpha is not None:
            pixels, alpha = composite_on_white(pixels, alpha), None
        samples = quantize(pixels, 8)
    else:
        depth = bit_depth if name in ("PNG", "TIFF") else 8
        samples = quantize(pixels, depth)
        if alpha is not None:
            samples = np.dstack([samples, quantize(alpha, depth)])

    def encode(fp: BinaryIO) -> None:
        exif_obj = build_exif(exif, width, height, provenance)
        if name == "PNG":
            _write_png(fp, samples, icc_profile, exif_obj, provenance)
        elif name == "TIFF":
            _write_tiff(fp, samples, icc_profile, exif_obj)
        else:
            options = _pillow_options(name, quality, lossless)
            if icc_profile:
                options["icc_profile"] = icc_profile
            if exif_obj is not None:
                options["exif"] = exif_obj.tobytes()
            Image.fromarray(samples).save(fp, format=name, **options)

    return atomic_write(path, encode)


def _pillow_options(name: str, quality: int, lossless: bool) -> dict[str, Any]:
    """Encoder options for Pillow's JPEG and WebP writers."""
    if name == "JPEG":
        # 4:4:4 chroma keeps the fine colour detail an upscaler produces at high quality.
        return {"quality": quality, "subsampling": 0 if quality >= 90 else 2, "optimize": True}
    if lossless or quality == 100:
        return {"lossless": True}  # with Pillow's default compression effort
    return {"quality": quality}


def _output_format(path: Path, fmt: str | None) -> str:
    name = canonical_format(fmt) if fmt else format_from_suffix(path)
    if name not in WRITABLE_FORMATS:
        what = f"the format {fmt!r}" if fmt else f"'{path.suffix or path.name}' files"
        raise ImageWriteError(
            path, f"cannot write {what}; choose one of {', '.join(WRITABLE_FORMATS)}"
        )
    return name


def _fitting_profile(icc: bytes | None, grey: bool) -> bytes | None:
    """``icc`` when its colour space is that of the pixels (GRAY for grey, else RGB)."""
    space = b"GRAY" if grey else b"RGB "
    return icc if icc and len(icc) >= 128 and icc[16:20] == space else None


def _check_arrays(pixels: np.ndarray, alpha: np.ndarray | None) -> None:
    for label, arr, shapes in (("pixels", pixels, "(H, W, 3) or (H, W)"),
                               ("alpha", alpha, "(H, W)")):
        if arr is None:
            continue
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{label} must be a numpy array, got {type(arr).__name__}")
        if arr.dtype not in (np.uint8, np.uint16) and not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(f"{label} must be float, uint8 or uint16, got {arr.dtype}")
        colour = arr is pixels and arr.ndim == 3 and arr.shape[2] == 3
        if not (colour or arr.ndim == 2) or 0 in arr.shape:
            raise ValueError(f"{label} must have shape {shapes}, got {arr.shape}")
    if alpha is not None and alpha.shape != pixels.shape[:2]:
        raise ValueError(f"alpha shape {alpha.shape} does not match pixels {pixels.shape[:2]}")


def _png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(chunk_type + data)
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", crc)


def _write_png(
    fp: BinaryIO,
    pixels: np.ndarray,
    icc: bytes | None,
    exif: Image.Exif | None,
    provenance: dict[str, Any] | None,
) -> None:
    """Encode with OpenCV (8/16-bit grey, RGB or RGBA) and add metadata chunks right after
    IHDR."""
    if pixels.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
        pixels = cv2.cvtColor(pixels, code)
    ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, _PNG_LEVEL])
    if not ok:
        raise ValueError("OpenCV failed to encode the PNG")
    data = memoryview(encoded)
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    if bytes(data[12:16]) != b"IHDR":
        raise ValueError("unexpected PNG layout from OpenCV")
    fp.write(data[:ihdr_end])
    if icc:
        fp.write(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if exif is not None:
        fp.write(_png_chunk(b"eXIf", exif.tobytes()[len(b"Exif\x00\x00") :]))
    if provenance is not None:
        fp.write(_png_chunk(b"tEXt", b"Software\x00" + SOFTWARE.encode("latin-1")))
        # iTXt: keyword NUL, uncompressed flag, method, empty language tag NUL, empty
        # translated keyword NUL, UTF-8 text.
        text = encode_provenance(provenance).encode("utf-8")
        fp.write(_png_chunk(b"iTXt", PROVENANCE_KEY.encode("latin-1") + b"\x00" * 5 + text))
    fp.write(data[ihdr_end:])


def _write_tiff(
    fp: BinaryIO, pixels: np.ndarray, icc: bytes | None, exif: Image.Exif | None
) -> None:
    """Write a baseline little-endian grey or RGB TIFF (with alpha when ``pixels`` has 2 or 4
    channels), 8 or 16 bits per sample, Adobe Deflate.

    Layout, as Pillow's own TIFF writer does it: header, IFD0 (with the Exif/GPS sub-IFDs and
    tag data), then the compressed strips; StripOffsets are given relative to the end of the
    IFD data and made absolute by ``ImageFileDirectory_v2.tobytes``.
    """
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    height, width, channels = pixels.shape
    pixels = pixels.astype(pixels.dtype.newbyteorder("<"), copy=False)
    # Horizontal differencing (TIFF Predictor 2) per sample; unsigned wrap-around is intended.
    predicted = pixels.copy()
    predicted[:, 1:] -= pixels[:, :-1]
    rows_per_strip = max(1, min(height, _TIFF_STRIP_BYTES // predicted[0].nbytes))
    starts = range(0, height, rows_per_strip)

    def deflate(start: int) -> bytes:
        return zlib.compress(predicted[start : start + rows_per_strip].tobytes(), _TIFF_LEVEL)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        strips = list(pool.map(deflate, starts))  # zlib releases the GIL

    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    if exif is not None:
        sub_ifds = (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo)
        for tag, value in exif.items():
            if tag not in sub_ifds:
                ifd[tag] = value
        for tag in sub_ifds:
            if sub_ifd := exif.get_ifd(tag):
                ifd[tag] = sub_ifd
    bits = pixels.dtype.itemsize * 8
    ifd[256] = width  # ImageWidth
    ifd[257] = height  # ImageLength
    ifd[258] = (bits,) * channels  # BitsPerSample
    ifd[259] = 8  # Compression: Adobe Deflate
    ifd[262] = 2 if channels >= 3 else 1  # PhotometricInterpretation: RGB or BlackIsZero
    ifd[277] = channels  # SamplesPerPixel
    ifd[278] = rows_per_strip  # RowsPerStrip
    ifd[284] = 1  # PlanarConfiguration: contiguous
    ifd[317] = 2  # Predictor: horizontal differencing
    ifd[339] = (1,) * channels  # SampleFormat: unsigned integer
    if channels in (2, 4):
        ifd[338] = 2  # ExtraSamples: unassociated alpha
    if icc:
        ifd[34675] = icc  # ICC profile
    counts = [len(strip) for strip in strips]
    ifd[279] = tuple(counts)  # StripByteCounts
    ifd[273] = tuple(int(x) for x in np.cumsum([0, *counts[:-1]]))  # StripOffsets
    ifd.save(fp)
    for strip in strips:
        fp.write(strip)
