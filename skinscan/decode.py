"""Step 1: decode and validate an upload into an RGB uint8 array. Nothing is written to disk."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from skinscan import config

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "MPO"}


class InputError(ValueError):
    """A bad upload: ``code`` is machine-readable, ``message`` is for a person."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass
class Decoded:
    """A decoded upload: ``rgb`` (HxWx3 uint8), the photo's full size and the JPEG block size in ``rgb``'s pixels."""

    rgb: np.ndarray
    full_height: int
    full_width: int
    jpeg_block: int = 8  # 4 when a large JPEG was decoded at half size (its 8x8 blocks are 4x4 px there)


def decode_image(data: bytes) -> np.ndarray:
    """Decode ``data`` (JPEG, PNG, WebP or BMP) into an HxWx3 uint8 RGB array, EXIF orientation applied."""
    return decode_upload(data).rgb


def decode_upload(data: bytes) -> Decoded:
    """``decode_image`` with what the quality step needs to know about it.

    A JPEG whose short side is at least ``2 * config.DECODE_MIN_SIDE`` is decoded at half size by libjpeg's DCT
    scaling (Pillow's ``draft``): about 3x cheaper for a phone photo, and every later step (quality view, model
    input) still shrinks it further. Never below half size: at half size the JPEG block grid is still 4 px, so
    ``blockiness`` keeps finding heavy compression (bench figures in ``skinscan/quality.py``).
    """
    if not data:
        raise InputError("empty", "The upload is empty. Choose a photo file and try again.")
    if len(data) > config.MAX_UPLOAD_BYTES:
        raise InputError(
            "too_large",
            f"The file is {len(data) / 1e6:.1f} MB; the limit is {config.MAX_UPLOAD_BYTES // (1024 * 1024)} MB. "
            "Send a smaller or more compressed photo.",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format
            width, height = img.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InputError("decompression_bomb", "The image declares an implausibly large size and was refused.")
    except Exception:
        if _has_allowed_signature(data):
            # e.g. a WebP cut short fails already in Image.open (Pillow decodes WebP eagerly): it is a damaged
            # photo of a supported kind, not "not an image".
            raise InputError(
                "truncated", "The image file is damaged or incomplete. Take or export the photo again."
            )
        raise InputError("not_an_image", "The file is not an image we can read. Send a JPEG, PNG, WebP or BMP photo.")
    if fmt not in ALLOWED_FORMATS:
        raise InputError(
            "unsupported_format", f"{fmt} images are not supported. Send a JPEG, PNG, WebP or BMP photo."
        )
    if width * height > config.MAX_PIXELS:
        raise InputError(
            "too_many_pixels",
            f"The image is {width}x{height} ({width * height / 1e6:.0f} megapixels); the limit is "
            f"{config.MAX_PIXELS / 1e6:.0f} megapixels. Send a smaller photo.",
        )
    reduced = fmt in ("JPEG", "MPO") and min(width, height) >= 2 * config.DECODE_MIN_SIDE
    try:
        if reduced:
            img.draft(None, (width // 2, height // 2))  # libjpeg picks 1/2 (size requests round down)
            reduced = img.size[0] < width
        drafted = img.size
        img.load()
        img = ImageOps.exif_transpose(img)
        rgb = _to_rgb(img)
    except InputError:
        raise
    except Exception:
        raise InputError("truncated", "The image file is damaged or incomplete. Take or export the photo again.")
    # np.array copies: np.asarray on a PIL image gives a read-only view, which breaks in-place drawing/edits
    # downstream (cv2.rectangle, arr[...] = ...).
    rgb = np.ascontiguousarray(np.array(rgb, dtype=np.uint8))
    turned = rgb.shape[1] != drafted[0]  # EXIF orientation swapped width and height
    full_height, full_width = (width, height) if turned else (height, width)
    return Decoded(rgb, full_height, full_width, 4 if reduced else 8)


def _has_allowed_signature(data: bytes) -> bool:
    """True when ``data`` starts like a JPEG, PNG, WebP or BMP file (magic bytes only)."""
    return (
        data[:3] == b"\xff\xd8\xff"
        or data[:8] == b"\x89PNG\r\n\x1a\n"
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
        or (data[:2] == b"BM" and data[6:10] == b"\0\0\0\0")
    )


def _to_rgb(img: Image.Image) -> Image.Image:
    """Alpha, palette, grayscale, CMYK and 16-bit images become 8-bit RGB (alpha composited on white)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # Only 16-bit grayscale PNGs reach here (mode "I;16", or "I" in older Pillow): samples are always on a
        # 0..65535 scale. (Guessing the scale from the image maximum brightened a dark 16-bit photo 257x.)
        arr = np.clip(np.asarray(img), 0, 65535).astype(np.uint32)  # 65535 * 255 fits in uint32
        img = Image.fromarray(((arr * 255 + 32767) // 65535).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")
