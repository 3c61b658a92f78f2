"""Post-hoc variants of the three tiers on the cached fold predictions (no retraining), for experiments.json.

    .venv/bin/python -m training.tier_variants [--folds cache/folds] [--out FILE.json]

Reads each fold model's held-out predictions (``training.calibrate.heldout_predictions``, cached in heldout.npz) and the shipped temperature, then, with every
held-out photo counted as skin: the caps at the product floors instead of ``config``'s, and other confidence scores for
the confident tier (each at its own lowest threshold under the shipped caps). Prints and writes named / useful and
the out-of-scope figures of each.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from skinscan import config
from skinscan.classifier import softmax
from skinscan.unknown_gate import unknown_scores
from training import crossval
from training.calibrate import heldout_predictions

N = len(config.CLASS_IDS)
FLOORS = {"max_none_of_8": config.PRODUCT_FLOORS["none_of_8"], "max_other_mean": config.PRODUCT_FLOORS["other_mean"],
          "max_other_worst": config.PRODUCT_FLOORS["other_worst"], "max_healthy": config.PRODUCT_FLOORS["healthy_disease"]}
CONFIDENCE = {  # rows of head logits, temperature -> a confidence score per row (higher: surer of one infection)
    "9-way p1 (shipped)": lambda lo, t: np.sort(softmax(lo, t)[:, :N], axis=1)[:, -1],
    "9-way margin p1 - max(p2, other)": lambda lo, t: (lambda p: np.sort(p[:, :N], axis=1)[:, -1]
                                                       - np.maximum(np.sort(p[:, :N], axis=1)[:, -2], p[:, N]))(softmax(lo, t)),
    "8-way p1 x (1 - other)": lambda lo, t: np.sort(softmax(lo[:, :N], t), axis=1)[:, -1] * (1 - softmax(lo, t)[:, N]),
    "9-way p1 at T = 1": lambda lo, t: np.sort(softmax(lo, 1.0)[:, :N], axis=1)[:, -1],
}


def confidence_variant(feats, loso, temperature, sources, rule, score) -> dict:
    """The lowest threshold on ``score`` that meets the shipped caps, at the shipped unknown threshold; its figures."""
    per = {s: loso["fold"] == s for s in sources}
    for c in crossval.TIER_GRID:
        named, useful, other, healthy = [], [], [], []
        for m in per.values():
            lo, y, kinds = loso["logits"][m], feats["y"][m], feats["kinds"][m]
            unknown = unknown_scores(lo, temperature, N, rule["top_diseases"]) >= rule["threshold"]
            sure = (score(lo, temperature) >= c) & ~unknown
            d = kinds == "disease"
            if d.any():
                verdict = np.where(unknown[d], "unknown", np.where(sure[d], "disease", "uncertain"))
                hit, fine = crossval.named_and_useful(lo[d], verdict, lo[d, :N].argmax(1), y[d])
                named.append(hit.mean())
                useful.append(fine.mean())
            other += [sure[kinds == "other"].mean()] if (kinds == "other").any() else []
            healthy += [sure[kinds == "healthy"].mean()] if (kinds == "healthy").any() else []
        if (np.mean(other) <= config.TIER_MAX_OTHER_MEAN and max(other) <= config.TIER_MAX_OTHER_WORST
                and max(healthy) <= config.TIER_MAX_HEALTHY):
            return {"confident": float(c), "named_mean": float(np.mean(named)), "useful_mean": float(np.mean(useful)),
                    "other_mean": float(np.mean(other)), "other_worst": float(max(other)), "healthy_worst": float(max(healthy))}
    return {}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", default=str(config.ROOT / "cache" / "folds"))
    ap.add_argument("--model", default=str(config.MODEL_DIR))
    ap.add_argument("--out", default=None, help="JSON to write (default: print only)")
    args = ap.parse_args(argv)
    feats = crossval.load_features(config.BACKBONE)
    cv = json.loads((Path(args.model) / "crossval.json").read_text())
    loso = heldout_predictions(feats, Path(args.folds), crossval.grouped_masks(feats)["test"])[0]
    temperature, sources = cv["temperature"], cv["fitted_on"]
    out = {"shipped caps": crossval.choose_tiers(feats, loso, temperature, sources),
           "caps at the product floors": crossval.choose_tiers(feats, loso, temperature, sources, **FLOORS)}
    for name, rule in list(out.items()):
        out[name]["healthy_uncertain_mean"] = float(np.mean(
            [crossval.report_held_out(feats, loso, s, temperature, rule)["healthy"]["uncertain"]
             for s in sources if ((loso["fold"] == s) & (feats["kinds"] == "healthy")).any()]))
    out["confidence scores"] = {name: confidence_variant(feats, loso, temperature, sources, out["shipped caps"], score)
                                for name, score in CONFIDENCE.items()}
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
