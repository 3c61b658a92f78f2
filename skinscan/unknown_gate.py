"""Step 5: which of three answers: a confident disease, uncertain (the two likeliest named), or none of the 8.

The classifier's head has a 9th class, "other" (other skin conditions and healthy skin, from every photo
source). In its calibrated 9-way softmax, the *confidence* is the probability of the likeliest infection, and the
*unknown score* 1 - the probability mass of the ``top`` likeliest infections. The answer is ``unknown`` when the
unknown score reaches the unknown threshold (the head puts the photo in "other", not between two infections), else
``disease`` when the confidence reaches the confident threshold, else ``uncertain``.
``training.calibrate`` sets both thresholds on photo sources the head never saw (``training.crossval.choose_tiers``),
and how the score flattens the differential (``disease_probabilities``).
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


def confidences(logits: np.ndarray, temperature: float, n_diseases: int) -> np.ndarray:
    """Rows of head logits -> the 9-way calibrated probability of the likeliest disease per row."""
    return softmax(logits, temperature)[:, :n_diseases].max(axis=1)


def tiers(logits: np.ndarray, temperature: float, n_diseases: int, top: int, threshold: float, confident: float) -> np.ndarray:
    """Rows of head logits -> "disease", "uncertain" or "unknown" per row (the rule of the module docstring)."""
    sure = confidences(logits, temperature, n_diseases) >= confident
    unknown = unknown_scores(logits, temperature, n_diseases, top) >= threshold
    return np.where(unknown, "unknown", np.where(sure, "disease", "uncertain"))


class UnknownGate:
    def __init__(self, threshold: float, temperature: float, n_diseases: int, top: int = 1, confident: float = 0.0):
        self.threshold, self.temperature, self.confident = float(threshold), float(temperature), float(confident)
        self.n_diseases, self.top = n_diseases, int(top)

    @classmethod
    def load(cls, params: dict, temperature: float, n_diseases: int) -> "UnknownGate":
        if params["method"] != "other_class":
            raise ValueError(f"unsupported unknown gate {params['method']!r}: retrain with `make train`")
        # gates before top_diseases: 1; before the three tiers (no "confident"): every photo not unknown is a disease
        return cls(params["threshold"], temperature, n_diseases, params.get("top_diseases", 1), params.get("confident", 0.0))

    def decide(self, logits: np.ndarray) -> dict:
        """{"tier": disease / uncertain / unknown, "is_unknown", "score" (unknown score), "confidence"}."""
        row = np.asarray(logits)[None]
        score = float(unknown_scores(row, self.temperature, self.n_diseases, self.top)[0])
        tier = str(tiers(row, self.temperature, self.n_diseases, self.top, self.threshold, self.confident)[0])
        return {"tier": tier, "is_unknown": tier == "unknown", "score": round(score, 4),
                "confidence": round(float(confidences(row, self.temperature, self.n_diseases)[0]), 4)}
