"""Compare fold-model variants (recipes, seeds) on the sources they never saw, each under the decision refitted on it.

    .venv/bin/python -m training.compare_folds cache/folds cache/folds-e16 [--only dermnet,nailweb] [--out FILE.json]

Each argument is a directory of fold models (``training.train --holdout-source F --out DIR/F``, the folds of
``crossval.fold_names``). Every variant is scored on the same folds: those every variant has, or ``--only``. Per
variant, as ``training.calibrate`` fits the shipped model (the skin gate left out: every photo counts as skin):
the temperature and the three tiers' thresholds refitted on those folds (caps in ``config``) and the summary they
give (named, useful, none-of-8, other conditions and healthy skin given a disease, healthy uncertain, ECE); the
nested ECE (calibration fitted on the other sources); and threshold-free, per held-out source, the top-1 of the 8 and
the AUROC of the top-2 unknown score between its photos of the 8 and every held-out out-of-scope photo (pooled too).
The figures experiments.json quotes for the recipes and seeds compared on the grown data (2026-12 on).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from skinscan import config
from skinscan.unknown_gate import unknown_scores
from training import crossval, metrics
from training.calibrate import heldout_predictions

N = len(config.CLASS_IDS)


def variant_figures(feats, loso, sources) -> dict:
    """The decision refitted on the held-out ``sources`` of ``loso`` and what it gives, plus threshold-free figures."""
    temperature = crossval.fit_temperature_loso(feats, loso, sources)
    rule = crossval.choose_tiers(feats, loso, temperature, sources)
    table = crossval.summarise(feats, loso, temperature, rule, sources)
    held = np.isin(loso["fold"], sources)
    in_scope, out_of_scope = held & (feats["kinds"] == "disease"), held & np.isin(feats["kinds"], ("other", "healthy"))
    u = unknown_scores(loso["logits"], temperature, N, config.UNKNOWN_TOP_DISEASES)
    per_source = {}
    for s in sources:
        m = (loso["fold"] == s) & in_scope
        if m.any():
            per_source[s] = {"n": int(m.sum()), "top1": float(np.mean(loso["logits"][m, :N].argmax(1) == feats["y"][m])),
                             "auroc": metrics.auroc(u[m], u[out_of_scope]) if out_of_scope.any() else None,
                             "named": table[s]["in_scope"]["right_answer"], "useful": table[s]["in_scope"]["useful"]}
    return {"temperature": temperature, "thresholds": {"unknown": rule["threshold"], "confident": rule["confident"]},
            "auroc_pooled": metrics.auroc(u[in_scope], u[out_of_scope]) if out_of_scope.any() else None,
            "summary": table["summary"], "per_source": per_source,
            "nested_ece": crossval.nested_ece(feats, loso, config.UNKNOWN_TOP_DISEASES, sources)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", help="directories of fold models (DIR/FOLD/model.keras)")
    ap.add_argument("--only", default="", help="comma-separated folds to score (default: those every variant has)")
    ap.add_argument("--out", default=None, help="JSON to write (default: print only)")
    args = ap.parse_args(argv)
    feats = crossval.load_features(config.BACKBONE)
    test = crossval.grouped_masks(feats)["test"]
    folds = [f for f in crossval.fold_names(feats) if all((Path(v) / f / "model.keras").exists() for v in args.variants)]
    folds = [f for f in folds if f in args.only.split(",")] if args.only else folds
    if not folds:
        raise SystemExit("no fold that every variant has")
    sources = [s for s in crossval.held_out_sources(feats, folds) if s not in crossval.REPORT_ONLY]
    results = {}
    for variant in args.variants:
        loso = heldout_predictions(feats, Path(variant), test, folds)[0]
        r = results[variant] = variant_figures(feats, loso, sources)
        s = r["summary"]
        print(f"{variant}: T {r['temperature']:.2f}, unknown >= {r['thresholds']['unknown']:.2f}, confident >= "
              f"{r['thresholds']['confident']:.2f}; named {s['right_answer_mean']:.3f}, useful {s['useful_mean']:.3f}, "
              f"healthy uncertain {s['healthy_uncertain_mean'] or 0:.3f}, ECE {s['ece_mean']:.3f}, AUROC pooled "
              f"{r['auroc_pooled'] or 0:.3f}; " + ", ".join(f"{k} top-1 {v['top1']:.2f} AUROC {v['auroc'] or 0:.3f} "
                                                           f"named {v['named']:.2f}" for k, v in r["per_source"].items()),
              flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"folds": folds, "sources": sources, "results": results}, indent=1))
    return results


if __name__ == "__main__":
    main()
