"""Step 5: "is this one of the 8 infections at all?" (higher score = more likely unknown).

``training.gates`` compares max-softmax, energy, Mahalanobis distance and a learned outlier head on
held-out conditions and stores the winner; every method is implemented here so the comparison and
serving share one code path.
"""
from __future__ import annotations

import numpy as np

from skinscan.classifier import softmax
from skinscan.skin_gate import _unit

METHODS = ("max_softmax", "energy", "mahalanobis", "learned", "learned+max_softmax")


def method_scores(method: str, logits, embeddings, arrays, temperature: float) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    if method == "max_softmax":
        return 1.0 - softmax(logits, temperature).max(axis=1)
    if method == "energy":
        z = logits / temperature
        m = z.max(axis=1)
        return -(temperature * (m + np.log(np.exp(z - m[:, None]).sum(axis=1))))
    if method == "mahalanobis":
        # class means and a shared covariance in a PCA-whitened space (fitted on training embeddings)
        p = (_unit(embeddings) - arrays["maha_center"]) @ arrays["maha_projection"]
        d = ((p[:, None, :] - arrays["maha_means"][None]) ** 2).sum(axis=2)
        return np.sqrt(d.min(axis=1))
    if method == "learned":
        u = (_unit(embeddings) - arrays["ood_center"]) / arrays["ood_scale"]
        return 1.0 / (1.0 + np.exp(-(u @ arrays["ood_weights"] + float(arrays["ood_bias"]))))
    if method == "learned+max_softmax":  # mean of the two scores, both in [0, 1]
        return 0.5 * (method_scores("learned", logits, embeddings, arrays, temperature)
                      + method_scores("max_softmax", logits, embeddings, arrays, temperature))
    raise ValueError(f"unknown method {method}")


class UnknownGate:
    def __init__(self, method: str, threshold: float, arrays, temperature: float):
        self.method, self.threshold, self.arrays, self.temperature = method, float(threshold), arrays, temperature

    @classmethod
    def load(cls, arrays, params: dict, temperature: float) -> "UnknownGate":
        return cls(params["method"], params["threshold"], arrays, temperature)

    def scores(self, logits, embeddings) -> np.ndarray:
        return method_scores(self.method, logits, embeddings, self.arrays, self.temperature)

    def decide(self, logits: np.ndarray, embedding: np.ndarray) -> dict:
        score = float(self.scores(logits[None], embedding[None])[0])
        return {"is_unknown": score >= self.threshold, "score": round(score, 4)}
