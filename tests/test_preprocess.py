"""The one preprocessing function: geometry, scaling, and the lossless float16 hop to the classifier service."""
from __future__ import annotations

import numpy as np
import skimage.data

from skinscan import config
from skinscan.decode import decode_image
from skinscan.preprocess import to_model_input


def test_shape_and_scaling():
    rgb = skimage.data.chelsea()
    x = to_model_input(rgb)
    assert x.shape == (config.IMAGE_SIZE, config.IMAGE_SIZE, 3) and x.dtype == np.float32
    assert x.min() >= -127 / 128 and x.max() <= 128 / 128
    small = to_model_input(rgb[:50, :80])  # enlarged, not cropped
    assert small.shape == x.shape


def test_float16_transport_is_lossless():
    x = to_model_input(skimage.data.coffee())
    assert np.array_equal(x.astype(np.float16).astype(np.float32), x)


def test_decoded_png_matches_the_array():
    import io

    from PIL import Image

    rgb = skimage.data.astronaut()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    assert np.array_equal(to_model_input(decode_image(buf.getvalue())), to_model_input(rgb))


def test_colour_constancy_removes_a_colour_cast():
    """Shades-of-grey: the same photo under a blue-ish and a red-ish light gives nearly the same model input."""
    from skinscan.preprocess import shades_of_grey

    rgb = skimage.data.coffee().astype(np.float32)
    blue = np.clip(rgb * [0.8, 0.95, 1.2], 0, 255).astype(np.uint8)
    red = np.clip(rgb * [1.2, 0.95, 0.8], 0, 255).astype(np.uint8)
    plain = np.abs(to_model_input(blue) - to_model_input(red)).mean()
    corrected = np.abs(to_model_input(blue, colour_constancy=True) - to_model_input(red, colour_constancy=True)).mean()
    assert corrected < plain / 3, (plain, corrected)
    grey = np.full((32, 32, 3), 90, np.uint8)
    assert np.array_equal(shades_of_grey(grey), grey)  # a neutral photo is left as it is
