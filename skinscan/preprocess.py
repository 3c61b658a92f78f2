"""The one preprocessing function shared by training, evaluation and serving (no train/serve skew).

bytes -> ``skinscan.decode.decode_image`` (validation, EXIF orientation, RGB) -> ``to_model_input`` (resize policy,
scaling). Training decodes with the same ``decode_image`` (``training.data.load_rgb``).
"""
from __future__ import annotations

import cv2
import numpy as np

from skinscan import config


def shades_of_grey(rgb: np.ndarray, p: int = 6) -> np.ndarray:
    """Shades-of-grey colour constancy (Finlayson & Trezzi 2004): divide out the estimated colour of the light."""
    img = rgb.astype(np.float32)
    light = np.power(np.mean(np.power(img, p), axis=(0, 1)), 1 / p) + 1e-6
    return np.clip(img * (light.mean() / light), 0, 255).astype(np.uint8)


def to_model_input(rgb: np.ndarray, size: int = config.IMAGE_SIZE, colour_constancy: bool = False) -> np.ndarray:
    """HxWx3 uint8 RGB -> size x size x 3 float32 in EfficientNet-Lite scaling.

    Resize policy: the whole photo is resized to a square (no crop, so a lesion at the edge is never cut
    off); INTER_AREA when shrinking, INTER_LINEAR when enlarging. ``colour_constancy`` (a setting of the
    model, in its labels.json) applies shades-of-grey to the resized photo.
    """
    h, w = rgb.shape[:2]
    interp = cv2.INTER_AREA if (h > size or w > size) else cv2.INTER_LINEAR
    resized = cv2.resize(rgb, (size, size), interpolation=interp)
    if colour_constancy:
        resized = shades_of_grey(resized)
    return (resized.astype(np.float32) - config.PIXEL_MEAN) / config.PIXEL_SCALE
