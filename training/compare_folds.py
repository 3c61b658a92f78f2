"""Compare fold-model variants on the sources they never saw (threshold-free figures of the experiments).

    .venv/bin/python -m training.compare_folds cache/folds cache/folds-lite2 [--out FILE.json]

Each argument is a directory of fold models (``training.train --holdout-source S --out DIR/S``). For every
held-out source that a fold-model directory has (DermNet, SD-198, toenail crawl; one photo per near-duplicate
group, never a test-split photo): top-1 of the 8, the temperature that source alone would fit, top-label ECE at
the shipped temperature, and per unknown score (1 - the mass of the N likeliest diseases, N = 1, 2) the AUROC
between photos of the 8 and out-of-scope photos and the right answer where 20% / 25% of them get a disease.
These are the figures quoted in ``experiments.json`` (recipes, seeds, backbones).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from skinscan import config
from skinscan.classifier import ModelFiles, softmax
from skinscan.unknown_gate import unknown_scores
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", help="directories of fold models (DIR/SOURCE/model.keras)")
    ap.add_argument("--out", default=None, help="JSON to write (default: print only)")
    args = ap.parse_args(argv)
    feats = crossval.load_features(config.BACKBONE)
    test = crossval.grouped_masks(feats)["test"]
    y, groups, sources = feats["y"], feats["groups"], feats["sources"]
    temperature = ModelFiles(config.MODEL_DIR).temperature
    results = {}
    for source in SOURCES:
        held = crossval.one_per_group(groups, (sources == source) & (y >= 0) & ~test)
        for variant in args.variants:
            fold_dir = Path(variant) / source
            if not (fold_dir / "model.keras").exists():
                continue
            logits = heldout_logits(fold_dir, feats["paths"][held])
            r = fold_figures(logits, y[held], feats["kinds"][held] == "disease", temperature)
            results.setdefault(source, {})[variant] = r
            scores = "  ".join(f"top-{k[-1]}: AUROC {v['auroc']:.3f} right@20% {v['right@0.20']:.2f} right@25% {v['right@0.25']:.2f}"
                               for k, v in r.items() if k.startswith("unknown_top"))
            print(f"{source:8s} {variant:28s} top-1 {r['top1']:.3f}  T alone {r['temperature_alone']:.2f}  "
                  f"ECE {r['ece']:.3f}  {scores}", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"temperature": temperature, "results": results}, indent=1))
    return results


if __name__ == "__main__":
    main()
