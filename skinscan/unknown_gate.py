"""Step 5: "is this one of the 8 infections at all?" (higher score = more likely unknown).

The classifier's head has a 9th class, "other" (other skin conditions and healthy skin, from every photo
source). The score is 1 - the probability mass of the ``top`` likeliest diseases in its calibrated 9-way
softmax: a photo is unknown when the head puts it in "other" or spreads it over many diseases. With ``top`` = 2
a photo the head splits between two infections (chickenpox or shingles) is in scope: the answer is the likelier
one, and the differential shows the other. ``training.calibrate`` chooses ``top`` and the threshold on photo
sources the head never saw (``training.crossval.choose_unknown_rule``), and how the score flattens the
differential (``disease_probabilities``).
"""
from __future__ import annotations

import numpy as np

from skinscan.classifier import softmax


def unknown_scores(logits: np.ndarray, temperature: float, n_diseases: int, top: int = 1) -> np.ndarray:
    """Rows of head logits (diseases first, "other" last) -> unknown score in [0, 1] per row."""
    diseases = np.sort(softmax(logits, temperature)[:, :n_diseases], axis=1)
    return 1.0 - diseases[:, -top:].sum(axis=1)


def disease_probabilities(logits: np.ndarray, temperature: float, n_diseases: int, top: int = 1,
                          by_unknown: dict | None = None) -> np.ndarray:
    """Rows of head logits -> the calibrated probabilities of the differential over the diseases. Its temperature is
    the model's one ``temperature``, or, when it was calibrated per photo (calibration.json ``by_unknown``,
    ``training.calibrate``), ``t0 * exp(slope * unknown score)``: the less a photo looks like one of the 8 to the
    model, the flatter its differential."""
    t = np.full(len(logits), float(temperature))
    if by_unknown:
        t = by_unknown["t0"] * np.exp(by_unknown["slope"] * unknown_scores(logits, temperature, n_diseases, top))
    return softmax(np.asarray(logits)[:, :n_diseases], t[:, None])


class UnknownGate:
    def __init__(self, threshold: float, temperature: float, n_diseases: int, top: int = 1):
        self.threshold, self.temperature = float(threshold), float(temperature)
        self.n_diseases, self.top = n_diseases, int(top)

    @classmethod
    def load(cls, params: dict, temperature: float, n_diseases: int) -> "UnknownGate":
        if params["method"] != "other_class":
            raise ValueError(f"unsupported unknown gate {params['method']!r}: retrain with `make train`")
        return cls(params["threshold"], temperature, n_diseases, params.get("top_diseases", 1))  # gates before top: 1

    def decide(self, logits: np.ndarray) -> dict:
        score = float(unknown_scores(np.asarray(logits)[None], self.temperature, self.n_diseases, self.top)[0])
        return {"is_unknown": score >= self.threshold, "score": round(score, 4)}
