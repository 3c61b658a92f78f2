"""Step 4: the EfficientNet-Lite0 classifier (8 infections) and its calibrated probabilities.

Both runtimes map a batch of ``to_model_input`` arrays to (logits [n, len(labels)], embedding [n, D]):

* ``Classifier``: ``model.tflite`` on LiteRT (PyPI ``ai-edge-litert``, XNNPACK). The serving path (the API,
  ``skinscan scan``, ``training.evaluate``) uses it; it never imports TensorFlow.
* ``KerasClassifier``: ``model.keras`` on TensorFlow, for training, gate fitting and the export check.

``python -m training.export_tflite`` writes ``model.tflite`` from ``model.keras``; ``tests/test_model.py`` checks
that both give the same answers. Temperature scaling is applied by the callers with ``softmax`` below (the
differential's per-photo temperature: ``unknown_gate.disease_probabilities``).
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from skinscan import config


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class ModelFiles:
    """``labels.json`` and ``calibration.json`` of a model directory."""

    def __init__(self, model_dir: Path | str):
        self.model_dir = Path(model_dir)
        meta = json.loads((self.model_dir / "labels.json").read_text())
        self.labels: list[str] = meta["labels"]
        self.name = meta.get("model_name", config.MODEL_NAME)
        self.version = meta.get("version", "unknown")
        self.colour_constancy = bool(meta.get("colour_constancy", False))  # preprocessing setting of this model
        self.input_size = int(meta.get("input_size", config.IMAGE_SIZE))  # square side the photo is resized to
        calibration = json.loads((self.model_dir / "calibration.json").read_text())
        self.temperature = float(calibration["temperature"])  # of the 9-way head: the unknown score's
        self.by_unknown = calibration.get("by_unknown")  # the differential's per-photo temperature (unknown_gate)


class Classifier(ModelFiles):
    """``model.tflite`` on the LiteRT interpreter (float32, XNNPACK, ``num_threads`` threads).

    The interpreter is not thread-safe: calls are serialised by a lock, one image per invoke (LiteRT runs
    batch 1 as fast per image as larger batches on CPU, and a fixed input shape never re-plans the graph).
    """

    def __init__(self, model_dir: Path | str = config.MODEL_DIR, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        super().__init__(model_dir)
        path = self.model_dir / "model.tflite"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run `python -m training.export_tflite --model-dir "
                                    f"{self.model_dir}` (part of `make train`)")
        self.num_threads = num_threads or config.MODEL_THREADS
        self._interpreter = Interpreter(model_path=str(path), num_threads=self.num_threads)
        runner = self._interpreter.get_signature_runner()
        (inp,) = runner.get_input_details().values()
        details = runner.get_output_details()  # {"output_0": ..., "output_1": ...} in the Keras output order
        outputs = [details[k] for k in sorted(details)]
        del runner  # it holds views into the interpreter, which allocate_tensors refuses
        self._input = inp["index"]
        self._interpreter.allocate_tensors()
        if outputs[0]["shape"][-1] != len(self.labels):
            raise ValueError(f"{path}: first output has {outputs[0]['shape'][-1]} columns, labels.json lists "
                             f"{len(self.labels)} classes; re-export the model")
        self._logits, self._embedding = (o["index"] for o in outputs)
        self.embedding_size = int(outputs[1]["shape"][-1])
        self._lock = threading.Lock()

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batch of model inputs -> (logits [n, len(labels)], embeddings [n, D]) as float32 numpy."""
        batch = np.asarray(batch, dtype=np.float32)
        logits = np.empty((len(batch), len(self.labels)), np.float32)
        embedding = np.empty((len(batch), self.embedding_size), np.float32)
        with self._lock:
            for i, x in enumerate(batch):
                self._interpreter.set_tensor(self._input, x[None])
                self._interpreter.invoke()
                logits[i] = self._interpreter.get_tensor(self._logits)[0]
                embedding[i] = self._interpreter.get_tensor(self._embedding)[0]
        return logits, embedding


class KerasClassifier(ModelFiles):
    """``model.keras`` on TensorFlow (training, gate fitting, the export check and the plain-server baseline)."""

    def __init__(self, model_dir: Path | str = config.MODEL_DIR):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import tensorflow as tf

        super().__init__(model_dir)
        self.model = keras.models.load_model(self.model_dir / "model.keras", compile=False)
        self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        for n in (1, 2, 3):  # warm up; with reduce_retracing the third call traces a batch-size-generic graph
            self.forward(np.zeros((n, self.input_size, self.input_size, 3), np.float32))

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batch of model inputs -> (logits [n, len(labels)], embeddings [n, D]) as float32 numpy."""
        logits, embedding = self._forward(np.asarray(batch, dtype=np.float32))
        return np.asarray(logits), np.asarray(embedding)
