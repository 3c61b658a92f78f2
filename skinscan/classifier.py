"""Step 4: the EfficientNet-Lite0 classifier (8 infections) and its calibrated probabilities.

The exported Keras model maps a batch of ``to_model_input`` arrays to (logits[8], embedding[1280]);
temperature scaling is applied here so every caller gets the same calibrated probabilities.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from skinscan import config

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Classifier:
    """Loads ``model.keras``, ``labels.json`` and ``calibration.json`` from a model directory."""

    def __init__(self, model_dir: Path | str = config.MODEL_DIR):
        import keras
        import tensorflow as tf

        self.model_dir = Path(model_dir)
        meta = json.loads((self.model_dir / "labels.json").read_text())
        self.labels: list[str] = meta["labels"]
        self.name = meta.get("model_name", config.MODEL_NAME)
        self.version = meta.get("version", "unknown")
        self.temperature = float(json.loads((self.model_dir / "calibration.json").read_text())["temperature"])
        self.model = keras.models.load_model(self.model_dir / "model.keras", compile=False)
        self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        for n in (1, 2, 3):  # warm up; with reduce_retracing the third call traces a batch-size-generic graph
            self.forward(np.zeros((n, config.IMAGE_SIZE, config.IMAGE_SIZE, 3), np.float32))

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batch of model inputs -> (logits [n, 8], embeddings [n, 1280]) as float32 numpy."""
        logits, embedding = self._forward(np.asarray(batch, dtype=np.float32))
        return np.asarray(logits), np.asarray(embedding)
