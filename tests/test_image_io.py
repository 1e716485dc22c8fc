"""Tests of bimacosr_app.image_io: reading, writing, metadata, provenance and failure modes.

Test images are made with Pillow/OpenCV in tmp folders (small, so the file runs in a few
seconds); one test reads a real photo of the shared validation folder (val_photos.py).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms, ImageOps, JpegImagePlugin
from val_photos import val_photo

from bimacosr_app import atomic as atomic_module
from bimacosr_app.image_io import (
    DEFAULT_MAX_PIXELS,
    CorruptImageError,
    ImageReadError,
    ImageTooLargeError,
    ImageWriteError,
    UnsupportedFormatError,
    atomic_write_bytes,
    extension_for,
    format_for_output,
    is_image_path,
    probe_image,
    read_image,
    read_provenance,
    readable_formats,
    resize_alpha,
    writable_formats,
    write_image,
)
from bimacosr_app.image_io import writer as writer_module

PROVENANCE = {
    "app_version": "0.1.0",
    "model_hash": "sha256:0123abcd",
    "scale": 4,
    "tile": {"size": 256, "overlap": 32},
    "backend": "cpu",
    "note": "Zürich ✓",  # non-ASCII survives every container
}
EXIF_IFD = ExifTags.IFD.Exif
GPS_IFD = ExifTags.IFD.GPSInfo


# --------------------------------------------------------------------------- helpers


def smooth_rgb(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth, asymmetric float image (lossy codecs reproduce it closely)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([x / (w - 1), y / (h - 1), (x + 2 * y) / (w + 2 * h - 3)], axis=-1)


def smooth_alpha(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.clip((x + y) / (w + h - 2), 0, 1)


def asymmetric_u8(h: int = 6, w: int = 4) -> np.ndarray:
    """Every pixel different, so any flip or rotation is recognisable."""
    values = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    return values * 3


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 255).astype(np.uint8)


def to_u16(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 65535).astype(np.uint16)


def png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + chunk_type
        + data
        + struct.pack(">I", zlib.crc32(chunk_type + data))
    )


def png_header(width: int, height: int, *, crc_ok: bool = True) -> bytes:
    """A PNG claiming ``width`` x ``height`` RGB pixels, with a token IDAT (never decoded)."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    if not crc_ok:
        ihdr = ihdr[:-4] + b"\0\0\0\0"
    return b"\x89PNG\r\n\x1a\n" + ihdr + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture
def camera_jpeg(tmp_path: Path) -> Path:
    """A JPEG with camera-like EXIF: orientation 6, Exif sub-IFD (with a stale size), GPS."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Fujifilm"
    exif[ExifTags.Base.Model] = "X-T5"
    exif[ExifTags.Base.Orientation] = 6
    sub = exif.get_ifd(EXIF_IFD)
    sub[ExifTags.Base.DateTimeOriginal] = "2024:05:01 12:00:00"
    sub[ExifTags.Base.ExifImageWidth] = 9999
    sub[ExifTags.Base.ExifImageHeight] = 9999
    gps = exif.get_ifd(GPS_IFD)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSMapDatum] = "WGS-84"
    path = tmp_path / "camera.jpg"
    Image.fromarray(to_u8(smooth_rgb(40, 60))).save(path, quality=95, exif=exif.tobytes())
    return path


# --------------------------------------------------------------------------- formats


def test_format_tables_and_helpers() -> None:
    readable = readable_formats()
    for name in ("JPEG", "PNG", "WEBP", "TIFF", "BMP"):
        assert name in readable
    assert ".jpg" in readable["JPEG"] and ".tif" in readable["TIFF"]
    assert set(writable_formats()) == {"PNG", "JPEG", "WEBP", "TIFF"}

    assert is_image_path("a/b/IMG_0001.JPG")
    assert is_image_path(Path("scan.tiff"))
    assert not is_image_path("notes.txt")
    assert not is_image_path("._IMG_0001.jpg")  # macOS resource fork
    assert not is_image_path(".out.png.1a2b3c4d.part")  # our own unfinished output

    assert [extension_for(f) for f in ("PNG", "JPEG", "WEBP", "TIFF")] == [
        "png",
        "jpg",
        "webp",
        "tiff",
    ]
    assert extension_for("jpeg") == "jpg"
    with pytest.raises(ValueError):
        extension_for("BMP")

    assert format_for_output("jpg", "PNG") == "JPEG"
    assert format_for_output("tif", "PNG") == "TIFF"
    assert format_for_output("same", "JPEG") == "JPEG"
    assert format_for_output("same", "WEBP") == "WEBP"
    assert format_for_output("same", "BMP") == "PNG"
    assert format_for_output("same", "AVIF") == "PNG"
    assert format_for_output("same", None) == "PNG"
    with pytest.raises(ValueError):
        format_for_output("gif", "PNG")


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("with_alpha", [False, True], ids=["rgb", "rgba"])
@pytest.mark.parametrize(
    ("suffix", "bit_depth"), [(".png", 8), (".png", 16), (".tiff", 8), (".tiff", 16)]
)
def test_lossless_round_trip(tmp_path: Path, suffix: str, bit_depth: int, with_alpha: bool) -> None:
    rgb, alpha = smooth_rgb(), smooth_alpha() if with_alpha else None
    path = write_image(tmp_path / f"out{suffix}", rgb, alpha=alpha, bit_depth=bit_depth)

    img = read_image(path)
    step = 1 / (255 if bit_depth == 8 else 65535)
    assert img.format == ("PNG" if suffix == ".png" else "TIFF")
    assert img.bit_depth == bit_depth
    assert img.rgb.dtype == np.float32 and img.rgb.shape == rgb.shape
    assert (img.width, img.height) == (64, 48)
    assert np.abs(img.rgb - rgb).max() <= step / 2 + 1e-6
    if with_alpha:
        assert img.alpha is not None and img.alpha.dtype == np.float32
        assert np.abs(img.alpha - alpha).max() <= step / 2 + 1e-6
    else:
        assert img.alpha is None

    if not with_alpha:  # (libtiff's RGBA interface premultiplies 8-bit alpha)
        # An independent decoder agrees (the TIFF writer is our own): libtiff/libpng via OpenCV.
        decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        expected = (to_u8 if bit_depth == 8 else to_u16)(rgb)
        np.testing.assert_array_equal(decoded[..., ::-1], expected)


def test_sixteen_bit_values_survive(tmp_path: Path) -> None:
    # Values that are not multiples of 257 are lost by any detour through 8 bits.
    rng = np.random.default_rng(1)
    rgb16 = rng.integers(0, 65536, size=(20, 30, 3), dtype=np.uint16)
    alpha16 = rng.integers(0, 65536, size=(20, 30), dtype=np.uint16)
    assert np.any(rgb16 % 257)
    for suffix in (".png", ".tiff"):
        path = write_image(tmp_path / f"deep{suffix}", rgb16, alpha=alpha16, bit_depth=16)
        img = read_image(path)
        np.testing.assert_array_equal(to_u16(img.rgb), rgb16)
        np.testing.assert_array_equal(to_u16(img.alpha), alpha16)


def test_reads_sixteen_bit_files_from_other_encoders(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rgb16 = rng.integers(0, 65536, size=(12, 10, 3), dtype=np.uint16)
    grey16 = rng.integers(0, 65536, size=(12, 10), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])
    cv2.imwrite(str(tmp_path / "rgb16.tif"), rgb16[..., ::-1])
    Image.fromarray(grey16).save(tmp_path / "grey16.png")  # mode I;16
    Image.fromarray(grey16).save(tmp_path / "grey16.tif")

    for name in ("rgb16.png", "rgb16.tif"):
        img = read_image(tmp_path / name)
        assert img.bit_depth == 16 and probe_image(tmp_path / name).bit_depth == 16
        np.testing.assert_array_equal(to_u16(img.rgb), rgb16)
    for name in ("grey16.png", "grey16.tif"):
        img = read_image(tmp_path / name)
        assert img.bit_depth == 16
        for channel in range(3):
            np.testing.assert_array_equal(to_u16(img.rgb[..., channel]), grey16)


def test_jpeg_round_trip_and_chroma_subsampling(tmp_path: Path) -> None:
    rgb = smooth_rgb()
    high = write_image(tmp_path / "high.jpg", rgb, quality=95)
    low = write_image(tmp_path / "low.jpeg", rgb, quality=80)

    img = read_image(high)
    assert img.format == "JPEG" and img.bit_depth == 8 and img.alpha is None
    assert np.abs(img.rgb - rgb).mean() < 0.01
    with Image.open(high) as im:
        assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4
    with Image.open(low) as im:
        assert JpegImagePlugin.get_sampling(im) == 2  # 4:2:0


def test_jpeg_composites_alpha_onto_white(tmp_path: Path) -> None:
    rgb = np.zeros((16, 16, 3), np.float32)  # black
    alpha = np.zeros((16, 16), np.float32)
    alpha[:, 8:] = 1.0  # left half transparent, right half opaque
    img = read_image(write_image(tmp_path / "flat.jpg", rgb, alpha=alpha, bit_depth=16))
    assert img.alpha is None and img.bit_depth == 8
    assert img.rgb[:, :4].min() > 0.97  # white where it was transparent
    assert img.rgb[:, 12:].max() < 0.03  # black where it was opaque


def test_webp_lossy_and_lossless(tmp_path: Path) -> None:
    rgb, alpha = smooth_rgb(), smooth_alpha()
    lossy = write_image(tmp_path / "lossy.webp", rgb, alpha=alpha, quality=80)
    by_quality = write_image(tmp_path / "q100.webp", rgb, alpha=alpha, quality=100)
    by_flag = write_image(tmp_path / "flag.webp", rgb, alpha=alpha, quality=50, lossless=True)

    assert b"VP8L" not in lossy.read_bytes()[:64]
    img = read_image(lossy)
    assert img.format == "WEBP" and img.alpha is not None
    assert np.abs(img.rgb - rgb).mean() < 0.02
    for path in (by_quality, by_flag):
        assert b"VP8L" in path.read_bytes()[:64]
        img = read_image(path)
        np.testing.assert_array_equal(to_u8(img.rgb), to_u8(rgb))
        np.testing.assert_array_equal(to_u8(img.alpha), to_u8(alpha))


def test_accepts_integer_arrays(tmp_path: Path) -> None:
    rgb8 = asymmetric_u8(8, 8)
    img = read_image(write_image(tmp_path / "u8.png", rgb8))
    np.testing.assert_array_equal(to_u8(img.rgb), rgb8)
    img16 = read_image(write_image(tmp_path / "u8as16.png", rgb8, bit_depth=16))
    np.testing.assert_array_equal(to_u16(img16.rgb), rgb8.astype(np.uint16) * 257)


def test_float_input_is_clipped(tmp_path: Path) -> None:
    rgb = np.full((4, 4, 3), 0.5, np.float32)
    rgb[0, 0] = [-0.2, 1.7, np.nan]
    img = read_image(write_image(tmp_path / "clip.png", rgb))
    np.testing.assert_array_equal(img.rgb[0, 0], [0.0, 1.0, 0.0])


# --------------------------------------------------------------------------- input modes


def test_bmp_read(tmp_path: Path) -> None:
    rgb8 = asymmetric_u8(5, 7)
    Image.fromarray(rgb8).save(tmp_path / "a.bmp")
    img = read_image(tmp_path / "a.bmp")
    assert img.format == "BMP" and img.bit_depth == 8
    np.testing.assert_array_equal(to_u8(img.rgb), rgb8)


@pytest.mark.parametrize(("suffix", "bit_depth", "mode"), [
    (".png", 8, "L"), (".png", 16, "I;16"), (".tiff", 8, "L"), (".tiff", 16, "I;16"),
    (".jpg", 8, "L"), (".webp", 8, "RGB"),
])
def test_grey_pixels_are_written_as_grey(tmp_path: Path, suffix: str, bit_depth: int,
                                         mode: str, srgb_icc: bytes) -> None:
    """(H, W) pixels give one grey channel (WebP has none: three equal ones); an RGB profile
    does not go with them."""
    grey = smooth_rgb()[..., 1]
    path = write_image(tmp_path / f"g{suffix}", grey, bit_depth=bit_depth, icc_profile=srgb_icc,
                       quality=100)
    with Image.open(path) as im:
        assert im.mode == mode and im.size == (64, 48)
        assert "icc_profile" not in im.info or suffix == ".webp"
    img = read_image(path)
    assert img.grey == (mode != "RGB") and img.bit_depth == bit_depth
    step = 1 / (255 if bit_depth == 8 else 65535)
    tolerance = step / 2 + 1e-6 if suffix in (".png", ".tiff") else 2 / 255
    for channel in range(3):
        assert np.abs(img.rgb[..., channel] - grey).max() <= tolerance
    assert np.array_equal(img.rgb[..., 0], img.rgb[..., 2])


def test_grey_with_alpha(tmp_path: Path) -> None:
    grey, alpha = smooth_rgb()[..., 0], smooth_alpha()
    with Image.open(write_image(tmp_path / "ga.tiff", grey, alpha=alpha)) as im:
        assert im.mode == "LA"
    png = read_image(write_image(tmp_path / "ga.png", grey, alpha=alpha))  # as RGBA
    assert np.array_equal(png.rgb[..., 0], png.rgb[..., 1]) and png.alpha is not None
    with Image.open(write_image(tmp_path / "ga.jpg", grey, alpha=alpha)) as im:
        assert im.mode == "L"  # composited onto white


def test_greyscale_la_and_bilevel(tmp_path: Path) -> None:
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(np.dstack([grey, 255 - grey])).save(tmp_path / "la.png")  # mode LA
    Image.fromarray(grey > 100).save(tmp_path / "bilevel.png")  # mode 1

    img = read_image(tmp_path / "grey.png")
    assert img.alpha is None and img.grey
    for channel in range(3):
        np.testing.assert_array_equal(to_u8(img.rgb[..., channel]), grey)
    img = read_image(tmp_path / "la.png")
    assert probe_image(tmp_path / "la.png").has_alpha
    np.testing.assert_array_equal(to_u8(img.rgb[..., 1]), grey)
    np.testing.assert_array_equal(to_u8(img.alpha), 255 - grey)
    img = read_image(tmp_path / "bilevel.png")
    np.testing.assert_array_equal(img.rgb[..., 0], (grey > 100).astype(np.float32))


def test_palette_with_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (4, 2))
    im.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    im.putdata([0, 1, 0, 1, 1, 0, 1, 0])
    im.save(tmp_path / "pal.png", transparency=1)  # palette entry 1 (green) is transparent
    info = probe_image(tmp_path / "pal.png")
    assert info.mode == "P" and info.has_alpha

    img = read_image(tmp_path / "pal.png")
    np.testing.assert_array_equal(img.alpha[0], [1, 0, 1, 0])
    np.testing.assert_array_equal(img.rgb[0, 0], [1, 0, 0])


def test_cmyk_is_converted_to_rgb(tmp_path: Path) -> None:
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 255, 255, 0], [0, 0, 0, 255]]], np.uint8)
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "cmyk.tif")
    img = read_image(tmp_path / "cmyk.tif")
    expected = [[1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 0]]  # white, cyan, red, black
    np.testing.assert_array_equal(img.rgb[0], expected)
    assert img.icc_profile is None  # no CMYK profile may travel along with RGB pixels


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied(tmp_path: Path, orientation: int) -> None:
    pixels = asymmetric_u8(6, 4)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    path = tmp_path / "oriented.png"
    Image.fromarray(pixels).save(path, exif=exif.tobytes())
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im))

    img = read_image(path)
    np.testing.assert_array_equal(to_u8(img.rgb), expected)
    assert img.rgb.flags.c_contiguous  # ready for torch.from_numpy
    info = probe_image(path)
    assert (info.width, info.height) == (img.width, img.height) == expected.shape[1::-1]
    assert info.orientation == orientation
    if img.exif is not None:
        reloaded = Image.Exif()
        reloaded.load(img.exif)
        assert reloaded[ExifTags.Base.Orientation] == 1


def test_orientation_of_jpeg(camera_jpeg: Path) -> None:
    img = read_image(camera_jpeg)  # orientation 6: 60x40 stored, 40x60 upright
    assert (img.width, img.height) == (40, 60)
    with Image.open(camera_jpeg) as im:
        expected = np.asarray(ImageOps.exif_transpose(im)).astype(np.float32) / 255
    assert np.abs(img.rgb - expected).max() < 1e-6


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_orientation_of_tiff(tmp_path: Path, bit_depth: int, orientation: int) -> None:
    # 8-bit TIFFs are decoded by Pillow (which may turn them upright itself while loading),
    # 16-bit ones by OpenCV: either way the result must be turned exactly once.
    rgb = smooth_rgb(6, 4)
    stored = to_u8(rgb) if bit_depth == 8 else to_u16(rgb)
    ok, data = cv2.imencode(".tif", stored[..., ::-1])
    assert ok
    path = tmp_path / "oriented.tif"
    path.write_bytes(_tiff_with_tags(data.tobytes(), {ExifTags.Base.Orientation: orientation}))
    expected = {3: np.rot90(stored, 2), 6: np.rot90(stored, -1), 8: np.rot90(stored, 1)}

    info = probe_image(path)
    img = read_image(path)
    assert img.bit_depth == bit_depth
    assert (info.width, info.height) == (img.width, img.height)
    assert img.rgb.shape == expected[orientation].shape
    np.testing.assert_array_equal(
        (to_u8 if bit_depth == 8 else to_u16)(img.rgb), expected[orientation]
    )


def _tiff_with_tags(tiff: bytes, tags: dict[int, int]) -> bytes:
    """Add or replace SHORT tags: append a modified copy of IFD0 and point the header to it."""
    assert tiff[:2] == b"II"
    (ifd_offset,) = struct.unpack_from("<I", tiff, 4)
    (count,) = struct.unpack_from("<H", tiff, ifd_offset)
    entries = [tiff[ifd_offset + 2 + 12 * i : ifd_offset + 14 + 12 * i] for i in range(count)]
    (next_ifd,) = struct.unpack_from("<I", tiff, ifd_offset + 2 + 12 * count)
    existing = {struct.unpack_from("<H", e)[0]: e for e in entries}
    for tag, value in tags.items():
        existing[tag] = struct.pack("<HHIHH", tag, 3, 1, value, 0)
    new_ifd = struct.pack("<H", len(existing)) + b"".join(existing[t] for t in sorted(existing))
    new_ifd += struct.pack("<I", next_ifd)
    body = tiff + (b"\0" if len(tiff) % 2 else b"")
    return body[:4] + struct.pack("<I", len(body)) + body[8:] + new_ifd


# --------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tiff"])
def test_metadata_carried_and_updated(
    tmp_path: Path, camera_jpeg: Path, srgb_icc: bytes, suffix: str
) -> None:
    src = read_image(camera_jpeg)
    assert src.exif is not None
    big = resize_alpha(src.rgb[..., 0], src.width * 2, src.height * 2)  # stand-in output
    rgb = np.repeat(big[..., None], 3, axis=2)
    out = write_image(
        tmp_path / f"out{suffix}", rgb, icc_profile=srgb_icc, exif=src.exif, provenance=PROVENANCE
    )

    with Image.open(out) as im:
        assert im.info.get("icc_profile") == srgb_icc
        exif = im.getexif()
        assert exif[ExifTags.Base.Make] == "Fujifilm"
        assert exif[ExifTags.Base.Model] == "X-T5"
        assert exif[ExifTags.Base.Orientation] == 1
        sub = exif.get_ifd(EXIF_IFD)
        assert sub[ExifTags.Base.DateTimeOriginal] == "2024:05:01 12:00:00"
        assert (sub[ExifTags.Base.ExifImageWidth], sub[ExifTags.Base.ExifImageHeight]) == (80, 120)
        assert exif.get_ifd(GPS_IFD)[ExifTags.GPS.GPSMapDatum] == "WGS-84"
        if suffix != ".png":
            assert exif[ExifTags.Base.Software].startswith("BiMaCoSR Upscaler")
    assert read_provenance(out) == PROVENANCE
    again = read_image(out)  # upright already: no further rotation
    assert (again.width, again.height) == (80, 120)


def test_icc_profile_read_from_source(tmp_path: Path, srgb_icc: bytes) -> None:
    Image.fromarray(asymmetric_u8()).save(tmp_path / "icc.png", icc_profile=srgb_icc)
    assert read_image(tmp_path / "icc.png").icc_profile == srgb_icc
    grey_profile = b"\0" * 16 + b"GRAY" + b"\0" * 108  # a grey profile never goes with RGB
    Image.fromarray(asymmetric_u8()[..., 0]).save(tmp_path / "g.png", icc_profile=grey_profile)
    assert read_image(tmp_path / "g.png").icc_profile is None


def test_tiff_input_layout_tags_are_not_copied(tmp_path: Path) -> None:
    im = Image.fromarray(asymmetric_u8())
    im.save(tmp_path / "src.tif", compression="tiff_lzw", tiffinfo={ExifTags.Base.Artist: "Ann"})
    img = read_image(tmp_path / "src.tif")
    exif = Image.Exif()
    exif.load(img.exif)
    assert exif[ExifTags.Base.Artist] == "Ann"
    for layout_tag in (256, 257, 258, 259, 273, 279):  # size, depth, compression, strips
        assert layout_tag not in exif


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tiff"])
def test_provenance_round_trip(tmp_path: Path, suffix: str) -> None:
    out = write_image(tmp_path / f"p{suffix}", smooth_rgb(), provenance=PROVENANCE)
    assert read_provenance(out) == PROVENANCE
    plain = write_image(tmp_path / f"plain{suffix}", smooth_rgb())
    assert read_provenance(plain) is None


def test_read_provenance_of_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert read_provenance(tmp_path / "notes.txt") is None
    Image.fromarray(asymmetric_u8()).save(tmp_path / "a.bmp")
    assert read_provenance(tmp_path / "a.bmp") is None
    with pytest.raises(ImageReadError, match="does not exist"):
        read_provenance(tmp_path / "missing.png")


def test_read_provenance_ignores_pixel_limit(tmp_path: Path) -> None:
    # Outputs are 16x inputs; the provenance of a huge file must still be readable.
    path = tmp_path / "huge.png"
    head = png_header(100_000, 100_000)
    text = b"bimacosr\0\0\0\0\0" + b'{"scale":4}'
    path.write_bytes(head[:33] + png_chunk(b"iTXt", text) + head[33:])
    assert read_provenance(path) == {"scale": 4}


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tiff"])
def test_strip_metadata(tmp_path: Path, camera_jpeg: Path, srgb_icc: bytes, suffix: str) -> None:
    src = read_image(camera_jpeg)
    out = write_image(
        tmp_path / f"s{suffix}",
        src.rgb,
        icc_profile=srgb_icc,
        exif=src.exif,
        provenance=PROVENANCE,
        strip_metadata=True,
    )
    with Image.open(out) as im:
        assert "icc_profile" not in im.info
        assert "exif" not in im.info
        assert ExifTags.Base.Make not in im.getexif()
        assert not im.getexif().get_ifd(EXIF_IFD)
        if suffix == ".png":
            assert not im.text
    assert read_provenance(out) is None
    data = out.read_bytes()
    assert b"Fujifilm" not in data and b"bimacosr" not in data


# --------------------------------------------------------------------------- alpha resize


def test_resize_alpha() -> None:
    alpha = np.zeros((20, 20), np.float32)
    alpha[:, 10:] = 1.0  # hard vertical edge
    up = resize_alpha(alpha, 80, 60)
    assert up.shape == (60, 80) and up.dtype == np.float32
    assert up.min() >= 0.0 and up.max() <= 1.0  # cubic overshoot clamped: no halo
    assert np.all(up[:, :30] == 0.0) and np.all(up[:, 50:] == 1.0)  # flat regions stay exact
    assert 0.0 < up[30, 40] < 1.0  # the edge itself is antialiased

    down = resize_alpha(alpha, 5, 5)
    assert down.shape == (5, 5)
    assert abs(float(down.mean()) - 0.5) < 1e-6  # area averaging preserves coverage

    u8 = resize_alpha((alpha * 255).astype(np.uint8), 40, 40)
    assert u8.dtype == np.float32 and u8.max() == 1.0
    with pytest.raises(ValueError):
        resize_alpha(np.zeros((4, 4, 1), np.float32), 8, 8)


# --------------------------------------------------------------------------- bad inputs


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(CorruptImageError, match=r"empty \(0 bytes\)") as exc_info:
        read_image(tmp_path / "empty.jpg")
    assert "empty.jpg" in str(exc_info.value)
    with pytest.raises(CorruptImageError):
        probe_image(tmp_path / "empty.jpg")


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_jpeg_is_reported(tmp_path: Path, fraction: float) -> None:
    Image.fromarray(to_u8(smooth_rgb(128, 128))).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: int(len(data) * fraction)])
    assert probe_image(tmp_path / "cut.jpg").width == 128  # the header is intact
    with pytest.raises(CorruptImageError, match="truncated") as exc_info:
        read_image(tmp_path / "cut.jpg")
    assert "cut.jpg" in str(exc_info.value)


def _photo_jpeg(**options) -> bytes:
    """A real photo, 160 x 120, as JPEG bytes."""
    with Image.open(val_photo("kde_BytheWater.webp")) as im:
        small = im.convert("RGB").resize((160, 120), Image.Resampling.BOX)
    buf = io.BytesIO()
    small.save(buf, "JPEG", **options)
    return buf.getvalue()


@pytest.mark.parametrize("options", [{"quality": 90}, {"quality": 75, "optimize": True}],
                         ids=["standard-tables", "optimized-tables"])
def test_jpeg_missing_only_its_end_marker_is_read_with_a_warning(tmp_path: Path,
                                                                  options: dict) -> None:
    data = _photo_jpeg(**options)
    assert data.endswith(b"\xff\xd9")
    (tmp_path / "full.jpg").write_bytes(data)
    (tmp_path / "no-end.jpg").write_bytes(data[:-2])
    img = read_image(tmp_path / "no-end.jpg")
    np.testing.assert_array_equal(img.rgb, read_image(tmp_path / "full.jpg").rgb)
    assert img.warnings == ["'no-end.jpg' lacks the JPEG end marker; all of its image data "
                            "was there and was used"]
    assert read_image(tmp_path / "full.jpg").warnings == []
    # cut anywhere in its data, it is refused, however close to the end
    cut_by = [len(data) // 2, 400, 100, 40]
    for n in cut_by:
        (tmp_path / "cut.jpg").write_bytes(data[:-n])
        with pytest.raises(CorruptImageError, match="truncated or damaged"):
            read_image(tmp_path / "cut.jpg")


@pytest.mark.parametrize("options", [{"progressive": True}, {"restart_marker_blocks": 2}])
def test_progressive_or_restart_jpeg_without_end_marker_is_refused(tmp_path: Path,
                                                                   options: dict) -> None:
    """Their cuts between scans or intervals cannot be told from a missing marker."""
    (tmp_path / "no-end.jpg").write_bytes(_photo_jpeg(quality=90, **options)[:-2])
    with pytest.raises(CorruptImageError, match="truncated or damaged"):
        read_image(tmp_path / "no-end.jpg")


def test_jpeg_cut_inside_its_header(tmp_path: Path) -> None:
    data = _photo_jpeg(quality=90)
    (tmp_path / "head.jpg").write_bytes(data[:120])  # inside the quantization tables
    for read in (probe_image, read_image):
        with pytest.raises(CorruptImageError) as exc_info:
            read(tmp_path / "head.jpg")
        message = str(exc_info.value)
        assert message.startswith(f"Cannot read '{tmp_path / 'head.jpg'}': the file starts like "
                                  "a JPEG file but ends inside its header (120 bytes): it is "
                                  "truncated or damaged")


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("suffix", [".png", ".tiff"])
def test_truncated_png_and_tiff_are_reported(tmp_path: Path, suffix: str, bit_depth: int) -> None:
    rng = np.random.default_rng(3)
    full = write_image(
        tmp_path / f"full{suffix}", rng.random((64, 64, 3), np.float32), bit_depth=bit_depth
    )
    (tmp_path / f"cut{suffix}").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert probe_image(tmp_path / f"cut{suffix}").bit_depth == bit_depth  # header intact
    with pytest.raises(CorruptImageError, match="truncated"):
        read_image(tmp_path / f"cut{suffix}")


def test_text_renamed_png(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("These are my holiday notes, not a picture.\n")
    with pytest.raises(UnsupportedFormatError, match="contains text") as exc_info:
        read_image(tmp_path / "notes.png")
    assert "notes.png" in str(exc_info.value)


def test_damaged_header_and_unsupported_format(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(png_header(10, 10, crc_ok=False))
    with pytest.raises(CorruptImageError, match="header is damaged"):
        probe_image(tmp_path / "bad.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "anim.gif")
    with pytest.raises(UnsupportedFormatError, match="GIF files are not supported"):
        read_image(tmp_path / "anim.gif")
    (tmp_path / "random.png").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UnsupportedFormatError, match="not a recognised image format"):
        read_image(tmp_path / "random.png")


def test_heif_without_decoder(tmp_path: Path) -> None:
    if "HEIF" in readable_formats():
        pytest.skip("this installation decodes HEIF")
    (tmp_path / "phone.heic").write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64)
    with pytest.raises(UnsupportedFormatError, match="HEIF images cannot be decoded"):
        probe_image(tmp_path / "phone.heic")


@pytest.mark.skipif("AVIF" not in readable_formats(), reason="Pillow without AVIF support")
def test_avif_read(tmp_path: Path) -> None:
    pixels = np.zeros((32, 48, 3), np.uint8)
    pixels[:8, :8] = 255  # a white block top left
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # display rotated 90 degrees clockwise
    Image.fromarray(pixels).save(tmp_path / "a.avif", quality=95, exif=exif.tobytes())
    img = read_image(tmp_path / "a.avif")
    assert img.format == "AVIF" and (img.width, img.height) == (32, 48)
    assert img.rgb[:8, -8:].min() > 0.9 and img.rgb[-8:, :8].max() < 0.1  # block now top right
    assert format_for_output("same", img.format) == "PNG"


def test_decompression_bomb_refused_from_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(100_000, 100_000))  # 10 gigapixels claimed, ~100 bytes
    for reader in (probe_image, read_image):
        with pytest.raises(ImageTooLargeError, match="megapixels") as exc_info:
            reader(path)
        assert "bomb.png" in str(exc_info.value)


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(png_header(12_000, 10_000))  # 120 MP: above our default, below Pillow's
    assert DEFAULT_MAX_PIXELS < 120_000_000
    with pytest.raises(ImageTooLargeError, match=r"120\.0 megapixels \(12000x10000\)"):
        probe_image(path)
    info = probe_image(path, max_pixels=200_000_000)
    assert (info.width, info.height) == (12_000, 10_000)

    Image.fromarray(asymmetric_u8(100, 100)).save(tmp_path / "small.png")
    with pytest.raises(ImageTooLargeError, match=r"limit of 0\.005 megapixels"):
        read_image(tmp_path / "small.png", max_pixels=5_000)
    assert read_image(tmp_path / "small.png", max_pixels=None).width == 100


def test_directory_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path / "folder.png")
    with pytest.raises(ImageReadError, match="does not exist"):
        probe_image(tmp_path / "nope.jpg")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.png"
    Image.fromarray(asymmetric_u8()).save(path)
    path.chmod(0)
    try:
        with pytest.raises(ImageReadError, match="permission denied"):
            read_image(path)
    finally:
        path.chmod(0o644)


def test_reading_never_modifies_the_input(tmp_path: Path, camera_jpeg: Path) -> None:
    before = (file_digest(camera_jpeg), camera_jpeg.stat().st_mtime_ns)
    read_image(camera_jpeg)
    probe_image(camera_jpeg)
    read_provenance(camera_jpeg)
    assert (file_digest(camera_jpeg), camera_jpeg.stat().st_mtime_ns) == before
    assert leftovers(camera_jpeg.parent) == ["camera.jpg"]


# --------------------------------------------------------------------------- write failures


class _DiskFull(io.RawIOBase):
    """Stands in for the temporary file: accepts a few bytes, then fails like a full disk.

    It has no ``fileno()``, so Pillow's encoders write through ``write`` rather than
    straight to the file descriptor.
    """

    def __init__(self, real: io.BufferedWriter) -> None:
        self.real = real
        self.budget = 100

    def write(self, data: bytes) -> int:
        if len(data) > self.budget:
            self.real.write(bytes(data)[: self.budget])
            raise OSError(errno.ENOSPC, "No space left on device")
        self.budget -= len(data)
        return self.real.write(data)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.real.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.real.seek(offset, whence)

    def close(self) -> None:
        self.real.close()
        super().close()


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tiff"])
def test_disk_full_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    real_open_temp = atomic_module._open_temp

    def open_temp_on_full_disk(path: Path) -> tuple[_DiskFull, Path]:
        fp, temp = real_open_temp(path)
        return _DiskFull(fp), temp

    monkeypatch.setattr(atomic_module, "_open_temp", open_temp_on_full_disk)
    with pytest.raises(ImageWriteError, match="disk is full") as exc_info:
        write_image(tmp_path / f"out{suffix}", smooth_rgb(), provenance=PROVENANCE)
    assert f"out{suffix}" in str(exc_info.value)
    assert leftovers(tmp_path) == []  # no output, no temporary file


def test_failed_write_keeps_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "result.png"
    target.write_bytes(b"previous result")

    def fsync_on_full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_module.os, "fsync", fsync_on_full_disk)
    with pytest.raises(ImageWriteError, match="disk is full"):
        atomic_write_bytes(target, b"new result")
    assert target.read_bytes() == b"previous result"
    assert leftovers(tmp_path) == ["result.png"]


def test_unwritable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def replace_denied(src: str, dst: str) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic_module.os, "replace", replace_denied)
    with pytest.raises(ImageWriteError, match="folder is not writable"):
        write_image(tmp_path / "out.png", smooth_rgb())
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ImageWriteError, match="folder is not writable"):
            write_image(folder / "out.png", smooth_rgb())
    finally:
        folder.chmod(0o755)


def test_bad_output_locations(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ImageWriteError, match="is not a folder"):
        write_image(tmp_path / "file.txt" / "out.png", smooth_rgb())
    with pytest.raises(ImageWriteError, match="does not exist"):
        write_image(tmp_path / "missing" / "out.png", smooth_rgb())
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageWriteError, match="folder with that name"):
        write_image(tmp_path / "dir.png", smooth_rgb())
    with pytest.raises(ImageWriteError, match="cannot write"):
        write_image(tmp_path / "out.bmp", smooth_rgb())
    with pytest.raises(ImageWriteError, match="at most 16383"):
        write_image(tmp_path / "wide.webp", np.zeros((2, 16_384, 3), np.float32))
    with pytest.raises(ValueError):
        write_image(tmp_path / "out.png", smooth_rgb(), bit_depth=12)
    with pytest.raises(ValueError):
        write_image(tmp_path / "out.png", smooth_rgb()[..., :2])
    assert leftovers(tmp_path) == ["dir.png", "file.txt"]


def test_encoder_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module.cv2, "imencode", lambda *args: (False, None))
    with pytest.raises(ImageWriteError, match="could not encode"):
        write_image(tmp_path / "out.png", smooth_rgb())
    assert leftovers(tmp_path) == []


def test_output_permissions_follow_umask(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    out = write_image(tmp_path / "out.jpg", smooth_rgb())
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert leftovers(tmp_path) == ["out.jpg"]


# --------------------------------------------------------------------------- real photo


def test_real_photo(tmp_path: Path) -> None:
    path = val_photo("gc_explore_world_animals_jaguar.webp")  # has an ICC profile and EXIF
    before = file_digest(path)
    info = probe_image(path)
    img = read_image(path)
    assert file_digest(path) == before
    assert (img.width, img.height) == (info.width, info.height)
    assert img.format == "WEBP" and img.rgb.dtype == np.float32
    assert img.rgb.min() >= 0.0 and img.rgb.max() <= 1.0 and img.rgb.std() > 0.05
    with Image.open(path) as im:
        assert img.icc_profile == im.info.get("icc_profile")
        np.testing.assert_array_equal(to_u8(img.rgb), np.asarray(im.convert("RGB")))

    out = write_image(
        tmp_path / "jaguar.tiff",
        img.rgb,
        bit_depth=16,
        icc_profile=img.icc_profile,
        exif=img.exif,
        provenance=PROVENANCE,
    )
    again = read_image(out)
    assert again.bit_depth == 16 and again.icc_profile == img.icc_profile
    assert np.abs(again.rgb - img.rgb).max() < 1e-4
    assert read_provenance(out) == PROVENANCE
