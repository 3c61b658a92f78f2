"""The one preprocessing function shared by training, evaluation and serving (no train/serve skew).

decode (skinscan.decode.decode_image) -> resize policy -> scaling.
"""
from __future__ import annotations

import cv2
import numpy as np

from skinscan import config
from skinscan.decode import decode_image


def to_model_input(rgb: np.ndarray, size: int = config.IMAGE_SIZE) -> np.ndarray:
    """HxWx3 uint8 RGB -> size x size x 3 float32 in EfficientNet-Lite scaling.

    Resize policy: the whole photo is resized to a square (no crop, so a lesion at the edge is never cut
    off); INTER_AREA when shrinking, INTER_LINEAR when enlarging.
    """
    h, w = rgb.shape[:2]
    interp = cv2.INTER_AREA if (h > size or w > size) else cv2.INTER_LINEAR
    resized = cv2.resize(rgb, (size, size), interpolation=interp)
    return (resized.astype(np.float32) - config.PIXEL_MEAN) / config.PIXEL_SCALE


def load_model_input(data: bytes) -> np.ndarray:
    """Bytes of an image file -> model input (decode + resize + scale)."""
    return to_model_input(decode_image(data))
