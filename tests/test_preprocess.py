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
