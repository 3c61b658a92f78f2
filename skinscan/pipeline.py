"""The request pipeline, read top to bottom:

    decode/validate -> quality -> (model forward) -> skin -> classify -> tier (disease / uncertain / unknown)
    -> disease information

Plain Python, no web framework: the BentoML service, ``skinscan scan`` and the evaluation all call it.
The model forward pass is pluggable so the HTTP service can run it in its own batching service.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from skinscan import config, knowledge, quality
from skinscan.classifier import ModelFiles
from skinscan.decode import InputError, decode_upload
from skinscan.preprocess import to_model_input
from skinscan.skin_gate import SkinGate
from skinscan.unknown_gate import UnknownGate, disease_probabilities

Forward = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


@dataclass
class Prepared:
    """An upload that passed decode and quality: the model input and what the checks found."""

    model_input: np.ndarray
    quality: dict
    timings_ms: dict = field(default_factory=dict)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


class Pipeline:
    def __init__(self, model_dir: Path | str = config.MODEL_DIR, forward: Forward | None = None):
        self.model_dir = Path(model_dir)
        files = ModelFiles(self.model_dir)
        self.labels: list[str] = [c for c in files.labels if c != config.OTHER_LABEL]  # the 8 diseases, in head order
        self.n_logits = len(files.labels)  # the head's classes: the 8, then "other"
        self.colour_constancy, self.input_size = files.colour_constancy, files.input_size  # the model's preprocessing
        self.model_info = {"name": files.name, "version": files.version}
        self.temperature, self.by_unknown = files.temperature, files.by_unknown
        gates = json.loads((self.model_dir / "gates.json").read_text())
        with np.load(self.model_dir / "gates.npz") as npz:
            arrays = {k: npz[k].astype(np.float64) for k in npz.files}
        self.skin = SkinGate.load(arrays, gates["skin"])
        self.unknown = UnknownGate.load(gates["unknown"], self.temperature, len(self.labels))
        self.quality_thresholds = quality.load_thresholds(self.model_dir)
        self.cards = knowledge.load_cards()
        self._forward = forward

    # --- steps 1-2: decode and quality (CPU, per upload) ---------------------------------------
    def prepare(self, data: bytes) -> Prepared:
        """Decode, validate and check quality; raises InputError for anything that cannot be classified."""
        t0 = time.perf_counter()
        decoded = decode_upload(data)
        rgb = decoded.rgb
        t_decode = _ms(t0)
        t1 = time.perf_counter()
        report = quality.check_quality(rgb, self.quality_thresholds, decoded.jpeg_block,
                                       (decoded.full_height, decoded.full_width))
        if not report["usable"]:
            message = next(w["message"] for w in report["warnings"] if w["code"] == "unusable")
            raise InputError("unusable_image", message)
        model_input = to_model_input(rgb, self.input_size, colour_constancy=self.colour_constancy)
        quality_ms = _ms(t1)
        return Prepared(model_input, {k: report[k] for k in ("ok", "warnings", "metrics")},
                        {"decode": t_decode, "quality": quality_ms})

    # --- steps 3-6: skin, classify, unknown, information (from one forward pass) -----------------
    def finish(self, prepared: Prepared, logits: np.ndarray, embedding: np.ndarray, model_ms: float = 0.0) -> dict:
        t0 = time.perf_counter()
        skin = self.skin.decide(embedding)
        unknown = self.unknown.decide(logits)
        probs = self.disease_probabilities(logits[None])[0]  # "which of the 8", calibrated
        order = np.argsort(probs)[::-1]
        differential = [self._entry(i, probs[i]) for i in order[: config.TOP_K]]
        tier = unknown.pop("tier")
        verdict = tier if skin["is_skin"] else "not_skin"
        if verdict == "not_skin":
            differential = []
        disease = differential[0] if verdict == "disease" else None
        candidates = differential[: {"disease": 1, "uncertain": 2}.get(verdict, 0)]  # the infections the answer names
        info = self.cards[disease["id"]] if disease else None
        first, second = (differential + [None, None])[:2]
        close_call = (verdict == "disease" and second is not None
                      and second["probability"] >= config.CLOSE_CALL * first["probability"])
        key = "disease_or" if close_call else verdict
        message = config.VERDICT_MESSAGES[key].format(name=first["name"] if first else "",
                                                      second=second["name"] if second else "")
        timings = {**prepared.timings_ms, "model": round(model_ms, 1), "gates": _ms(t0)}
        timings["total"] = round(sum(timings.values()), 1)
        return {
            "verdict": verdict,
            "message": message,
            "disease": disease,
            "candidates": candidates,
            "differential": differential,
            "quality": prepared.quality,
            "skin": skin,
            "unknown": unknown,
            "info": info,
            "model": self.model_info,
            "timings_ms": timings,
            "disclaimer": config.DISCLAIMER,
        }

    def disease_probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Rows of head logits -> the calibrated 8-way probabilities of the differential (per-photo temperature)."""
        return disease_probabilities(logits, self.temperature, len(self.labels), self.unknown.top, self.by_unknown)

    def _entry(self, i: int, p: float) -> dict:
        cid = self.labels[i]
        return {"id": cid, "name": self.cards[cid]["name"], "probability": round(float(p), 4)}

    # --- whole pipeline in-process ---------------------------------------------------------
    def prepare_all(self, uploads: list[bytes]) -> list[Prepared | InputError]:
        out: list[Prepared | InputError] = []
        for data in uploads:
            try:
                out.append(self.prepare(data))
            except InputError as err:
                out.append(err)
        return out

    def finish_all(self, prepared: list[Prepared | InputError], logits, embeddings, model_ms: float) -> list[dict | InputError]:
        """Results in upload order; ``logits``/``embeddings`` hold one row per Prepared item."""
        rows = iter(zip(logits, embeddings))
        return [self.finish(p, *next(rows), model_ms) if isinstance(p, Prepared) else p for p in prepared]

    def run_batch(self, uploads: list[bytes]) -> list[dict | InputError]:
        """One result dict per upload, or the InputError that stopped it; the model runs once per batch."""
        prepared = self.prepare_all(uploads)
        ok = [p.model_input for p in prepared if isinstance(p, Prepared)]
        if not ok:
            return prepared
        t0 = time.perf_counter()
        logits, embeddings = self.forward(np.stack(ok))
        return self.finish_all(prepared, logits, embeddings, (time.perf_counter() - t0) * 1000 / len(ok))

    def run(self, data: bytes) -> dict:
        """The result for one upload; raises InputError."""
        (result,) = self.run_batch([data])
        if isinstance(result, InputError):
            raise result
        return result

    @property
    def forward(self) -> Forward:
        """The model forward pass; an in-process Classifier is loaded on first use unless one was given."""
        if self._forward is None:
            from skinscan.classifier import Classifier

            self._forward = Classifier(self.model_dir).forward
        return self._forward
