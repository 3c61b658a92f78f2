"""Metrics and plots shared by training and ``training.evaluate``."""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

from skinscan.classifier import softmax


def calibration_errors(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> np.ndarray:
    """Top-label ECE of each row of (rows x photos) top confidences and whether the top label was right: over
    equal-width confidence bins (lo, hi], the photo-weighted gap between confidence and accuracy, i.e. |sum of
    (right - confidence)| per bin over all photos. Vectorised: the calibration fits score thousands of settings."""
    conf, correct = np.atleast_2d(conf), np.atleast_2d(correct)
    rows, n = conf.shape
    bin_of = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1) + bins * np.arange(rows)[:, None]
    gaps = np.bincount(bin_of.ravel(), weights=(correct - conf).ravel(), minlength=rows * bins).reshape(rows, bins)
    return np.abs(gaps).sum(axis=1) / n


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    return float(calibration_errors(probs.max(axis=1), probs.argmax(axis=1) == y, bins)[0])


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood (Guo et al. 2017)."""

    def nll(t):
        p = softmax(logits, t)
        return -np.mean(np.log(p[np.arange(len(y)), y] + 1e-12))

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


TEMPERATURE_GRID = np.round(np.arange(0.30, 3.001, 0.05), 2)
ECE_BINS = (10, 12, 15, 18, 20)  # ECE averaged over these bin counts: steadier on a source of 40-100 photos


def fit_temperature_per_source(by_source: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Temperature with the lowest top-label ECE averaged over sources, each source counting the same.

    The pooled likelihood (``fit_temperature`` on all photos together) lets the largest, most over-confident source
    decide for every other one; this is the figure the probabilities are judged by (ECE per source, then the mean)."""

    def mean_ece(t):
        return np.mean([np.mean([expected_calibration_error(softmax(lo, t), y, b) for b in ECE_BINS]) for lo, y in by_source])

    return float(TEMPERATURE_GRID[np.argmin([mean_ece(t) for t in TEMPERATURE_GRID])])


SLOPE_GRID = np.round(np.arange(-1.0, 4.001, 0.1), 2)


def fit_temperature_by_unknown(by_source: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """Per-photo temperature ``t0 * exp(slope * unknown score)`` with the lowest top-label ECE averaged over sources
    (each a tuple of 8-way logits, labels, unknown scores), each source counting the same; a grid, so reruns agree.

    One temperature leaves a source the model finds unfamiliar over-confident and a familiar one under-confident;
    the unknown score says which a photo is (experiments.json "calibration: a temperature that rises with the
    unknown score")."""

    def mean_ece(slope):  # per t0 of the grid, at once
        out = np.zeros(len(TEMPERATURE_GRID))
        for lo, y, u in by_source:
            p = softmax(lo[None], (TEMPERATURE_GRID[:, None] * np.exp(slope * u)[None, :])[..., None])  # grid x photos x 8
            conf, correct = p.max(axis=-1), p.argmax(axis=-1) == y
            out += np.mean([calibration_errors(conf, correct, b) for b in ECE_BINS], axis=0)
        return out / len(by_source)

    scores = np.stack([mean_ece(slope) for slope in SLOPE_GRID], axis=1)  # t0 x slope
    i, j = np.unravel_index(np.argmin(scores), scores.shape)
    return {"t0": float(TEMPERATURE_GRID[i]), "slope": float(SLOPE_GRID[j])}


def classification_metrics(y: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict:
    """n, accuracy, macro_f1 (over the classes present), ece, per_class, confusion_matrix."""
    y = np.asarray(y)
    pred = probs.argmax(axis=1)
    present = sorted(set(y.tolist()))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=list(range(len(labels))), zero_division=0)
    cm = confusion_matrix(y, pred, labels=list(range(len(labels))))
    return {
        "n": int(len(y)),
        "accuracy": float((pred == y).mean()) if len(y) else 0.0,
        "macro_f1": float(np.mean([f[i] for i in present])) if present else 0.0,
        "ece": expected_calibration_error(probs, y) if len(y) else 0.0,
        "per_class": {
            labels[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i in range(len(labels))
        },
        "confusion_matrix": {"labels": list(labels), "matrix": cm.tolist(), "rows": "true", "columns": "predicted"},
    }


def auroc(in_scores, out_scores) -> float:
    """AUROC of telling out-of-scope (positive, higher score) from in-scope."""
    y = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    return float(roc_auc_score(y, np.r_[in_scores, out_scores]))


def plot_confusion(cm: list[list[int]], labels: list[str], path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, cm[i, j], ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_reliability(curves: dict, path, bins: int = 10) -> None:
    """curves: {label: (probs, y)} drawn as reliability diagrams on one plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    edges = np.linspace(0, 1, bins + 1)
    for name, (probs, y) in curves.items():
        conf, correct = probs.max(axis=1), probs.argmax(axis=1) == y
        xs, ys = [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = (conf > lo) & (conf <= hi)
            if m.any():
                xs.append(conf[m].mean())
                ys.append(correct[m].mean())
        ax.plot(xs, ys, "o-", label=f"{name} (ECE {expected_calibration_error(probs, y):.3f})")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability on the test split")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
