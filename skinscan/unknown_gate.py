"""Step 5: "is this one of the 8 infections at all?" (higher score = more likely unknown).

The classifier's head has a 9th class, "other" (other skin conditions and healthy skin, from every photo
source). The score is 1 - the largest disease probability of its calibrated 9-way softmax: a photo is unknown
when the head puts it in "other" or cannot settle on one disease. ``training.crossval`` sets the threshold on
photo sources the head never saw, for the worst of them.
"""
from __future__ import annotations

import numpy as np

from skinscan.classifier import softmax


def unknown_scores(logits: np.ndarray, temperature: float, n_diseases: int) -> np.ndarray:
    """Rows of head logits (diseases first, "other" last) -> unknown score in [0, 1] per row."""
    return 1.0 - softmax(logits, temperature)[:, :n_diseases].max(axis=1)


class UnknownGate:
    def __init__(self, threshold: float, temperature: float, n_diseases: int):
        self.threshold, self.temperature, self.n_diseases = float(threshold), float(temperature), n_diseases

    @classmethod
    def load(cls, params: dict, temperature: float, n_diseases: int) -> "UnknownGate":
        if params["method"] != "other_class":
            raise ValueError(f"unsupported unknown gate {params['method']!r}: retrain with `make train`")
        return cls(params["threshold"], temperature, n_diseases)

    def decide(self, logits: np.ndarray) -> dict:
        score = float(unknown_scores(np.asarray(logits)[None], self.temperature, self.n_diseases)[0])
        return {"is_unknown": score >= self.threshold, "score": round(score, 4)}
