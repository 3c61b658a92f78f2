"""Compare fold-model variants on the sources they never saw (threshold-free figures of the experiments).

    .venv/bin/python -m training.compare_folds cache/folds cache/folds-lite2 [--out FILE.json]

Each argument is a directory of fold models (``training.train --holdout-source S --out DIR/S``). For every
held-out source that a fold-model directory has (DermNet, SD-198, toenail crawl; one photo per near-duplicate
group, never a test-split photo): top-1 of the 8, the temperature that source alone would fit, top-label ECE at
the shipped temperature, and per unknown score (1 - the mass of the N likeliest diseases, N = 1, 2) the AUROC
between photos of the 8 and out-of-scope photos and the right answer where 20% / 25% of them get a disease.
Per variant with all three sources, ``calibration_transfer``: the ECE on each source of a temperature, an isotonic
map of the top-1 confidence and the shipped per-photo temperature fitted on the other two (does a calibrator carry
over to a new source? The per-photo fit takes the variant's Kaggle fold too where it has one, as shipped).
These are the figures quoted in ``experiments.json`` (recipes, seeds, backbones, temperature).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression

from skinscan import config
from skinscan.classifier import ModelFiles, softmax
from skinscan.unknown_gate import disease_probabilities, unknown_scores
from training import crossval, metrics
from training.calibrate import heldout_logits

N = len(config.CLASS_IDS)
SOURCES = ("dermnet", "sd198", "nailweb")


def fold_figures(logits, y, in_scope, temperature) -> dict:
    pred = logits[in_scope, :N].argmax(1)
    right = pred == y[in_scope]
    out = {"n_in_scope": int(in_scope.sum()), "n_out_of_scope": int((~in_scope).sum()),
           "top1": float(right.mean()), "temperature_alone": metrics.fit_temperature(logits[in_scope, :N], y[in_scope]),
           "ece": metrics.expected_calibration_error(softmax(logits[in_scope, :N], temperature), y[in_scope])}
    for top in (1, 2):
        u = unknown_scores(logits, temperature, N, top)
        score = out[f"unknown_top{top}"] = {"auroc": metrics.auroc(u[in_scope], u[~in_scope])}
        for cap in (0.20, 0.25):  # the threshold where this share of the out-of-scope photos get a disease
            t = np.quantile(u[~in_scope], cap)
            score[f"right@{cap:.2f}"] = float(np.mean((u[in_scope] < t) & right))
    return out


def calibration_transfer(by_source: dict, report_only: tuple = ()) -> dict:
    """{source: (head logits, y) of its photos of the 8} -> per source, ECE of calibrators fitted on the other sources
    (the shipped kind last: one temperature for the unknown score, the differential's per photo, whose fit also takes
    ``report_only`` (head logits, y) pairs, as training.calibrate does with the Kaggle fold)."""
    out = {}
    for source, (head_logits, y) in by_source.items():
        logits = head_logits[:, :N]
        others_head = [v for k, v in by_source.items() if k != source]
        others = [(lo[:, :N], v_y) for lo, v_y in others_head]
        fit_logits, fit_y = np.concatenate([v[0] for v in others]), np.concatenate([v[1] for v in others])
        t_shipped = metrics.fit_temperature_per_source(others)
        by_unknown = metrics.fit_temperature_by_unknown([(lo[:, :N], v_y, unknown_scores(lo, t_shipped, N, 2))  # top-2, as shipped
                                                         for lo, v_y in [*others_head, *report_only]])
        t = metrics.fit_temperature(fit_logits, fit_y)  # pooled likelihood
        fit_p = softmax(fit_logits, t)
        iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
        iso.fit(fit_p.max(1), fit_p.argmax(1) == fit_y)
        p = softmax(logits, t)
        top, conf = p.argmax(1), p.max(1)
        mapped = iso.predict(conf)  # the top class gets the mapped confidence, the rest keep their proportions
        p_iso = p * ((1 - mapped) / np.maximum(1 - conf, 1e-9))[:, None]
        p_iso[np.arange(len(top)), top] = mapped
        out[source] = {"temperature_of_the_others": t, "ece_temperature": metrics.expected_calibration_error(p, y),
                       "ece_isotonic": metrics.expected_calibration_error(p_iso, y),
                       "source_mean_temperature_of_the_others": t_shipped,  # as training.calibrate fits it
                       "ece_source_mean_temperature": metrics.expected_calibration_error(softmax(logits, t_shipped), y),
                       "ece_per_photo_temperature": metrics.expected_calibration_error(
                           disease_probabilities(head_logits, t_shipped, N, 2, by_unknown), y)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", help="directories of fold models (DIR/SOURCE/model.keras)")
    ap.add_argument("--out", default=None, help="JSON to write (default: print only)")
    args = ap.parse_args(argv)
    feats = crossval.load_features(config.BACKBONE)
    test = crossval.grouped_masks(feats)["test"]
    y = feats["y"]
    temperature = ModelFiles(config.MODEL_DIR).temperature
    results, in_scope_logits = {}, {}
    for source in SOURCES:
        held = crossval.heldout_photos(feats, source, test)
        for variant in args.variants:
            fold_dir = Path(variant) / source
            if not (fold_dir / "model.keras").exists():
                continue
            logits = heldout_logits(fold_dir, feats["paths"][held])
            in_scope = feats["kinds"][held] == "disease"
            r = fold_figures(logits, y[held], in_scope, temperature)
            results.setdefault(source, {})[variant] = r
            in_scope_logits.setdefault(variant, {})[source] = (logits[in_scope], y[held][in_scope])
            scores = "  ".join(f"top-{k[-1]}: AUROC {v['auroc']:.3f} right@20% {v['right@0.20']:.2f} right@25% {v['right@0.25']:.2f}"
                               for k, v in r.items() if k.startswith("unknown_top"))
            print(f"{source:8s} {variant:28s} top-1 {r['top1']:.3f}  T alone {r['temperature_alone']:.2f}  "
                  f"ECE {r['ece']:.3f}  {scores}", flush=True)
    for variant, by_source in in_scope_logits.items():
        if len(by_source) == len(SOURCES):
            kaggle = Path(variant) / "kaggle"  # a report-only fold joins the per-photo fit on what it could name
            extra = ()
            if (kaggle / "model.keras").exists():
                held = crossval.heldout_photos(feats, "kaggle", test)
                keep = crossval.nameable(feats, "kaggle")[held] & (feats["kinds"][held] == "disease")
                extra = ((heldout_logits(kaggle, feats["paths"][held])[keep], y[held][keep]),)
            results.setdefault("calibration_transfer", {})[variant] = transfer = calibration_transfer(by_source, extra)
            print(f"{variant}: fitted on the other two sources, ECE " + "  ".join(
                f"{k} T {v['temperature_of_the_others']:.2f} -> {v['ece_temperature']:.3f}, isotonic {v['ece_isotonic']:.3f}, "
                f"source-mean T {v['source_mean_temperature_of_the_others']:.2f} -> {v['ece_source_mean_temperature']:.3f}, "
                f"per photo {v['ece_per_photo_temperature']:.3f}"
                for k, v in transfer.items()))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"temperature": temperature, "results": results}, indent=1))
    return results


if __name__ == "__main__":
    main()
