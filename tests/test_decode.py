"""Step 1 (skinscan.decode): formats, orientation, mode conversion and clean InputErrors.

Every input is built in memory with Pillow; nothing is read from or written to disk.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from skinscan import config
from skinscan.decode import InputError, decode_image

PILLOW_DEFAULT_BOMB_LIMIT = int(1024 * 1024 * 1024 // 4 // 3)  # Image.MAX_IMAGE_PIXELS as Pillow ships it


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _photo(h: int = 40, w: int = 60, seed: int = 0) -> Image.Image:
    """A smooth colour gradient plus a little noise: survives lossy codecs with predictable colours."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), np.full_like(xx, 128)], axis=-1)
    arr = np.clip(arr + rng.integers(-8, 9, arr.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _png_header_only(width: int, height: int, bit_depth: int = 1, colour_type: int = 0) -> bytes:
    """A syntactically valid PNG that *declares* ``width`` x ``height`` but carries almost no pixel data.

    decode must refuse it from the header alone, so the missing rows never matter; building it by hand keeps
    the test instant (Pillow would spend ~1 s compressing 400 megapixels of zeros).
    """

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _assert_rgb_uint8(arr: np.ndarray, h: int, w: int) -> None:
    assert isinstance(arr, np.ndarray)
    assert arr.dtype == np.uint8
    assert arr.shape == (h, w, 3)


# --- formats ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt,kwargs,lossless",
    [
        ("JPEG", {"quality": 95}, False),
        ("PNG", {}, True),
        ("WEBP", {"lossless": True}, True),
        ("WEBP", {"quality": 90}, False),
        ("BMP", {}, True),
    ],
)
def test_supported_formats_decode_to_rgb_uint8(fmt, kwargs, lossless):
    img = _photo()
    arr = decode_image(_encode(img, fmt, **kwargs))
    _assert_rgb_uint8(arr, 40, 60)
    expected = np.asarray(img).astype(int)
    if lossless:
        assert np.array_equal(arr, expected)
    else:
        assert np.abs(arr.astype(int) - expected).mean() < 8  # same picture, channel order RGB (not BGR)


def test_output_is_a_writable_contiguous_array():
    arr = decode_image(_encode(_photo(), "PNG"))
    assert arr.flags.writeable and arr.flags.c_contiguous
    arr[0, 0] = 0  # downstream code may draw on or edit the array in place


# --- EXIF orientation ---------------------------------------------------------------------------------------


def test_exif_orientation_6_is_applied():
    # Stored 40 high x 60 wide with a red block at the stored top-left. Orientation 6 = "rotate 90 degrees
    # clockwise to display", so the photo must come out 60 high x 40 wide with the block at the top-right.
    arr = np.full((40, 60, 3), 255, np.uint8)
    arr[:12, :12] = (255, 0, 0)
    img = Image.fromarray(arr, "RGB")
    exif = img.getexif()
    exif[0x0112] = 6
    out = decode_image(_encode(img, "JPEG", quality=95, exif=exif.tobytes()))
    _assert_rgb_uint8(out, 60, 40)
    top_right = out[2:10, -10:-2].reshape(-1, 3).mean(axis=0)
    top_left = out[2:10, 2:10].reshape(-1, 3).mean(axis=0)
    assert top_right[0] > 200 and top_right[1] < 60 and top_right[2] < 60, top_right
    assert top_left.min() > 200, top_left  # white


@pytest.mark.parametrize("orientation", [1, 0, 9])
def test_normal_or_invalid_exif_orientation_leaves_the_image_alone(orientation):
    img = _photo()
    img.paste((255, 0, 0), (0, 0, 12, 12))  # a red block top-left: a mirror or rotation would move it
    exif = img.getexif()
    exif[0x0112] = orientation
    out = decode_image(_encode(img, "JPEG", quality=95, exif=exif.tobytes()))
    _assert_rgb_uint8(out, 40, 60)
    # the same pixels as the same JPEG without any EXIF, and close to the original picture
    assert np.array_equal(out, decode_image(_encode(img, "JPEG", quality=95)))
    assert np.abs(out.astype(int) - np.asarray(img).astype(int)).mean() < 6
    assert out[2:10, 2:10, 0].mean() > 200 and out[2:10, 2:10, 1].mean() < 60


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_exif_does_not_reject_a_good_photo():
    junk_exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00" + b"\xff" * 20
    out = decode_image(_encode(_photo(), "JPEG", exif=junk_exif))
    _assert_rgb_uint8(out, 40, 60)
    assert np.array_equal(out, decode_image(_encode(_photo(), "JPEG")))


# --- modes --------------------------------------------------------------------------------------------------


def test_rgba_is_composited_on_white():
    arr = np.zeros((20, 30, 4), np.uint8)
    arr[..., 0] = 200  # red, fully transparent on the left half, opaque on the right half
    arr[:, 15:, 3] = 255
    out = decode_image(_encode(Image.fromarray(arr, "RGBA"), "PNG"))
    _assert_rgb_uint8(out, 20, 30)
    assert (out[:, :15] == 255).all()
    assert (out[:, 15:] == (200, 0, 0)).all()


def test_la_becomes_three_equal_channels():
    arr = np.zeros((20, 30, 2), np.uint8)
    arr[..., 0] = 90
    arr[..., 1] = 255
    out = decode_image(_encode(Image.fromarray(arr, "LA"), "PNG"))
    _assert_rgb_uint8(out, 20, 30)
    assert (out == 90).all()


def test_palette_with_transparency():
    img = Image.new("P", (30, 20), 0)
    img.putpalette([10, 20, 30, 0, 255, 0] + [0] * (254 * 3))
    img.paste(1, (0, 0, 10, 20))  # left third: palette entry 1 (green)
    out = decode_image(_encode(img, "PNG", transparency=1))  # entry 1 is transparent -> white
    _assert_rgb_uint8(out, 20, 30)
    assert (out[:, :10] == 255).all()
    assert (out[:, 10:] == (10, 20, 30)).all()


@pytest.mark.parametrize("mode,fmt", [("L", "PNG"), ("1", "PNG"), ("P", "PNG"), ("L", "JPEG"), ("P", "BMP"), ("1", "BMP")])
def test_single_channel_and_palette_modes_become_rgb(mode, fmt):
    out = decode_image(_encode(_photo().convert(mode), fmt))
    _assert_rgb_uint8(out, 40, 60)
    if mode != "P":
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_cmyk_jpeg_becomes_rgb():
    img = _photo()
    out = decode_image(_encode(img.convert("CMYK"), "JPEG", quality=95))
    _assert_rgb_uint8(out, 40, 60)
    assert np.abs(out.astype(int) - np.asarray(img).astype(int)).mean() < 12


def test_16_bit_grayscale_png_is_scaled_to_8_bit():
    ramp = np.linspace(0, 65535, 60).round().astype(np.uint16)
    arr16 = np.tile(ramp, (40, 1))
    img = Image.fromarray(arr16)
    assert img.mode.startswith("I;16")
    out = decode_image(_encode(img, "PNG"))
    _assert_rgb_uint8(out, 40, 60)
    expected = np.round(arr16 / 257.0)
    assert np.abs(out[..., 0].astype(int) - expected).max() <= 1
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255


def test_dark_16_bit_png_stays_dark():
    # Every sample is 200 / 65535: almost black. (A "max <= 255 means 8-bit" guess made it 200 / 255.)
    img = Image.fromarray(np.full((20, 30), 200, np.uint16))
    out = decode_image(_encode(img, "PNG"))
    _assert_rgb_uint8(out, 20, 30)
    assert out.max() <= 1


# --- errors -------------------------------------------------------------------------------------------------


def _code(data: bytes) -> str:
    with pytest.raises(InputError) as info:
        decode_image(data)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.as_dict() == {"code": err.code, "message": err.message}
    assert err.message and str(err) == err.message
    return err.code


def test_empty():
    assert _code(b"") == "empty"


@pytest.mark.parametrize(
    "data",
    [
        b"This is not a photo, it is a text file.\n" * 20,
        b"GIF89a is not enough",
        bytes(range(256)) * 4,
    ],
)
def test_not_an_image(data):
    assert _code(data) == "not_an_image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_truncated(fmt):
    data = _encode(_photo(300, 400, seed=1), fmt)
    assert _code(data[: len(data) // 2]) == "truncated"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_only_the_first_bytes_of_a_supported_file_is_truncated(fmt):
    data = _encode(_photo(), fmt)
    assert _code(data[:16]) == "truncated"


def test_too_large():
    png = _encode(_photo(), "PNG")  # a valid header, padded past the upload limit
    data = png + b"\0" * (config.MAX_UPLOAD_BYTES + 1 - len(png))
    assert len(data) == config.MAX_UPLOAD_BYTES + 1
    assert _code(data) == "too_large"


def test_exactly_at_the_upload_limit_is_accepted():
    png = _encode(_photo(), "PNG")
    data = png + b"\0" * (config.MAX_UPLOAD_BYTES - len(png))  # trailing bytes after IEND are ignored
    _assert_rgb_uint8(decode_image(data), 40, 60)


def test_too_many_pixels_real_png():
    # 8000 x 6000 = 48 MP: over config.MAX_PIXELS (40 MP), under Pillow's bomb limit (~89 MP).
    data = _encode(Image.new("1", (8000, 6000)), "PNG", optimize=True)
    assert len(data) < 20_000
    assert 8000 * 6000 > config.MAX_PIXELS
    assert _code(data) == "too_many_pixels"


@pytest.mark.parametrize(
    "size,expected",
    [
        ((8000, 6000), "too_many_pixels"),  # 48 MP: our own limit
        ((10000, 10000), "decompression_bomb"),  # 100 MP: Pillow's DecompressionBombWarning (> ~89 MP)
        ((20000, 20000), "decompression_bomb"),  # 400 MP: Pillow's DecompressionBombError (> ~179 MP)
    ],
)
def test_oversized_declared_dimensions(monkeypatch, size, expected):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", PILLOW_DEFAULT_BOMB_LIMIT)  # whatever other code set
    assert _code(_png_header_only(*size)) == expected


def test_bomb_is_still_refused_when_pillows_guard_is_disabled(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # e.g. a training script switched it off
    assert _code(_png_header_only(20000, 20000)) == "too_many_pixels"


def test_header_only_png_below_the_limits_is_truncated_not_accepted():
    assert _code(_png_header_only(2000, 1500, bit_depth=8, colour_type=2)) == "truncated"


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "PPM", "ICO"])
def test_unsupported_format(fmt):
    data = _encode(_photo(32, 32), fmt)
    assert _code(data) == "unsupported_format"
