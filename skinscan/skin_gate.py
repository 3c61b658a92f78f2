"""Step 3: "is this a photo of skin?" A logistic head on the classifier's embedding.

Fitted by ``training.calibrate`` on skin photos (the 8 infections, other conditions, healthy skin) against everyday
photos (``non_skin``); the parameters live in ``<model_dir>/gates.npz`` and ``gates.json``.
"""
from __future__ import annotations

import numpy as np


def _unit(embedding: np.ndarray) -> np.ndarray:
    e = np.asarray(embedding, dtype=np.float64)
    return e / (np.linalg.norm(e, axis=-1, keepdims=True) + 1e-12)


class SkinGate:
    def __init__(self, weights: np.ndarray, bias: float, threshold: float):
        self.weights, self.bias, self.threshold = np.asarray(weights, np.float64), float(bias), float(threshold)

    @classmethod
    def load(cls, arrays, params: dict) -> "SkinGate":
        return cls(arrays["skin_weights"], params["bias"], params["threshold"])

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Probability-like skin score in [0, 1] per row (higher = more likely skin)."""
        return 1.0 / (1.0 + np.exp(-(_unit(embeddings) @ self.weights + self.bias)))

    def decide(self, embedding: np.ndarray) -> dict:
        score = float(self.scores(embedding[None])[0])
        return {"is_skin": score >= self.threshold, "score": round(score, 4)}
