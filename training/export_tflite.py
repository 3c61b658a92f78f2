"""Export the trained Keras classifier to LiteRT (``model.tflite``, float32) beside ``model.keras``.

    python -m training.export_tflite [--model-dir DIR]

The serving path (``skinscan.classifier.Classifier``) runs ``model.tflite`` with the ``ai-edge-litert``
interpreter, so TensorFlow is needed only here, in training and in evaluation. The batch dimension stays
dynamic; the output order is the Keras model's (logits, embedding) and the classifier checks it by shape.
Float32 on purpose: dynamic-range int8 was slower on CPU (XNNPACK runs float32 best).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from skinscan import config

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def export(model_dir: Path | str = config.MODEL_DIR) -> Path:
    import keras
    import tensorflow as tf

    model_dir = Path(model_dir)
    model = keras.models.load_model(model_dir / "model.keras", compile=False)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    tflite = converter.convert()
    out = model_dir / "model.tflite"
    tmp = out.with_suffix(".tflite.tmp")
    tmp.write_bytes(tflite)
    tmp.replace(out)  # atomic: a running server never reads half a file
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=config.MODEL_DIR)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = export(args.model_dir)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
