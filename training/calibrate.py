"""Calibrate the trained model on photo sources it never saw, fit its gates, measure it, write its model card.

    .venv/bin/python -m training.calibrate [--model DIR] [--folds cache/folds]      (run by make train)

1. the skin gate on the model's embeddings: train+val skin photos (clean and photo-condition views) vs half of
   non_skin; its decision is part of every figure below (the fold models' own gates are not fitted);
2. leave-one-source-out predictions: each fold model in ``--folds`` (``training.train --holdout-source F``) scores
   the photos it never saw (one per near-duplicate group, never a test-split photo): a source with photos of the 8,
   or for the out_of_scope fold every source without any, each reported as its own row;
3. the temperature: the lowest ECE averaged over the held-out sources (the 8-way probabilities of their photos of the 8);
   the three tiers' thresholds for the worst held-out source (``crossval.choose_tiers``, caps in ``config``): unknown
   calls few of any source's photos of the 8 "none of the 8", confident gives few other-condition or healthy photos a
   disease; then the differential's per-photo temperature, t0 * exp(slope * unknown score), the same way on every
   fold's photos of the infections it could name (and each source scored by a fit on the others only, ``nested_ece``);
4. figures on the grouped test split, per source, and the leave-one-source-out table; gates.json, gates.npz,
   calibration.json, metrics.json, crossval.json, plots and MODEL_CARD.md next to the model.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from skinscan import config
from skinscan.classifier import KerasClassifier, softmax
from skinscan.preprocess import to_model_input
from skinscan.skin_gate import _unit
from training import crossval, data, metrics, model_card

N = len(config.CLASS_IDS)


def model_outputs(clf: KerasClassifier, paths, transform=None, batch: int = 32, desc: str = "embed"):
    """(logits, embeddings) of photos (paths relative to the data root), with ``transform(rgb)`` applied first."""
    logits, embs = [], []
    for i in tqdm(range(0, len(paths), batch), desc=desc, unit="batch"):
        rgbs = [data.load_rgb(config.DATA_ROOT / p) for p in paths[i : i + batch]]
        lo, em = clf.forward(np.stack([to_model_input(transform(im) if transform else im, clf.input_size,
                                                      colour_constancy=clf.colour_constancy) for im in rgbs]))
        logits.append(lo)
        embs.append(em)
    return np.concatenate(logits), np.concatenate(embs)


def heldout_logits(fold_dir: Path, paths) -> np.ndarray:
    """Logits of a fold model on the photos of the source it never saw, cached beside the model (heldout.npz)."""
    cache = fold_dir / "heldout.npz"
    if cache.exists() and cache.stat().st_mtime > (fold_dir / "model.keras").stat().st_mtime:
        with np.load(cache) as z:
            if list(z["paths"]) == list(paths):
                return z["logits"]
    logits = model_outputs(KerasClassifier(fold_dir), paths, desc=f"fold {fold_dir.name}")[0]
    np.savez(cache, paths=np.asarray(paths), logits=logits)
    return logits


def heldout_predictions(feats, folds_dir: Path, test, only=()) -> tuple[dict, list]:
    """(leave-one-source-out predictions: each held-out photo's head logits, its source in "fold" (its row in the
    table; "" for photos no fold held out) and "skin" (all True: set it to a gate's decision), the folds found):
    every fold model of ``folds_dir`` (or of ``only``) on the photos of the fold it never saw (``heldout_logits``)."""
    n = len(feats["y"])
    loso = {"logits": np.zeros((n, len(crossval.HEAD_LABELS))), "skin": np.ones(n, bool), "fold": np.array([""] * n, dtype=object)}
    found = []
    for fold in crossval.fold_names(feats):
        if (only and fold not in only) or not (folds_dir / fold / "model.keras").exists():
            continue
        held = crossval.heldout_photos(feats, fold, test)
        loso["logits"][held] = heldout_logits(folds_dir / fold, feats["paths"][held])
        loso["fold"][held] = feats["sources"][held]
        found.append(fold)
    return loso, found


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(config.MODEL_DIR))
    ap.add_argument("--folds", default=str(config.ROOT / "cache" / "folds"))
    ap.add_argument("--seed", type=int, default=config.SEED)
    ap.add_argument("--features", default=None, help="embeddings file of training.features (default: the cache)")
    args = ap.parse_args(argv)
    model_dir = Path(args.model)
    feats = crossval.load_features(config.BACKBONE, path=args.features)  # the catalogue, groups and sources in one order
    masks = crossval.grouped_masks(feats, args.seed)
    paths, y, kinds, sources, groups = feats["paths"], feats["y"], feats["kinds"], feats["sources"], feats["groups"]
    rng = np.random.default_rng(args.seed)

    print("[1/4] skin gate on the model's embeddings")
    clf = KerasClassifier(model_dir)
    nonskin = kinds == "non_skin"
    nonskin_fit = crossval.fit_half(nonskin)
    skin_fit = (masks["train"] | masks["val"]) & (y >= 0)
    skin_clean = model_outputs(clf, paths[skin_fit], desc="skin photos")[1]
    skin_aug = model_outputs(clf, paths[skin_fit], lambda im: data.photo_conditions(data.augment(im, rng), rng), desc="skin, augmented")[1]
    ns_clean = model_outputs(clf, paths[nonskin_fit], desc="non-skin")[1]
    ns_aug = model_outputs(clf, paths[nonskin_fit], lambda im: data.augment(im, rng), desc="non-skin, augmented")[1]
    gate, skin_threshold, skin_report = crossval.fit_skin_gate([skin_clean, skin_aug], kinds[skin_fit], groups[skin_fit],
                                                               [ns_clean, ns_aug], groups[nonskin_fit])
    print(f"  threshold {skin_threshold:.3f}, out of fold: {json.dumps(skin_report)}")

    def is_skin(embeddings):  # the shipped gate's decision on the shipped model's embeddings
        return gate.predict_proba(_unit(embeddings))[:, 1] >= skin_threshold

    # the shipped skin gate on every train+val skin photo, once: the fold photos are among them
    shipped_skin = np.zeros(len(y), bool)
    shipped_skin[skin_fit] = is_skin(skin_clean)

    print("[2/4] leave-one-source-out predictions of the fold models")
    loso, folds_run = heldout_predictions(feats, Path(args.folds), masks["test"])
    if not folds_run:
        raise SystemExit(f"no fold models in {args.folds}: run `make crossval` first")
    held_sources = crossval.held_out_sources(feats, folds_run)
    fitted = [s for s in held_sources if s not in crossval.REPORT_ONLY]
    report_only = [s for s in held_sources if s not in fitted]
    # the whole pipeline decision: a fold photo the skin gate rejects is neither right nor given a disease
    loso["skin"] = shipped_skin | (loso["fold"] == "")  # fold photos are train+val photos of their source
    temperature = crossval.fit_temperature_loso(feats, loso, fitted)
    training = json.loads((model_dir / "training.json").read_text())
    # the unknown score over the 1, 2 or 3 likeliest infections, each with its own thresholds, for the record; the shipped
    # one is config.UNKNOWN_TOP_DISEASES (2: an uncertain answer names two, so "unknown" means not even they are likely)
    tried = {n: crossval.choose_tiers(feats, loso, temperature, fitted, n) for n in (1, 2, 3)}
    rule = tried[config.UNKNOWN_TOP_DISEASES]
    top = rule["top_diseases"]
    # the differential's temperature: every fold's photos of the infections it could name (a fourth source helps it carry
    # over to a new one: experiments.json "calibration: a temperature that rises with the unknown score")
    by_unknown = crossval.fit_by_unknown_loso(feats, loso, temperature, top, held_sources)
    nested = crossval.nested_ece(feats, loso, top, fitted, report_only)
    curve = crossval.operating_curve(feats, loso, temperature, held_sources, rule)
    print(f"  folds {folds_run}, held-out sources {held_sources} (fitted on {fitted}): T = {temperature:.3f}, tiers: "
          f"disease if the likeliest infection >= {rule['confident']:.2f}, else unknown if 1 - top-{top} mass >= "
          f"{rule['threshold']:.2f}, else uncertain; met {json.dumps(rule['met'])}; differential T = "
          f"{by_unknown['t0']:.2f} * exp({by_unknown['slope']:.1f} * unknown score); nested ECE {json.dumps(nested)}")

    print("[3/4] grouped test split, every source")
    test = crossval.one_per_group(groups, masks["test"])
    report_ns = nonskin & ~nonskin_fit
    t_logits, t_emb = model_outputs(clf, paths[test | report_ns], desc="test + non-skin report half")
    in_test = test[test | report_ns]
    skin_ok = is_skin(t_emb)
    lo, sk = t_logits[in_test], skin_ok[in_test]
    ns_accepted = float(skin_ok[~in_test].mean())
    ns_verdicts = crossval.decide(t_logits[~in_test], skin_ok[~in_test], temperature, rule)[0]
    ns_given_disease = float((ns_verdicts == "disease").mean())  # past both gates: the whole decision
    decisions = crossval.report_source(feats, test, lo, sk, temperature, rule, by_unknown)
    by_source = {}
    for s in sorted(set(sources[test])):
        sel = sources[test] == s
        by_source[s] = crossval.report_source(feats, test & (sources == s), lo[sel], sk[sel], temperature, rule, by_unknown)
    dis = kinds[test] == "disease"
    y_dis, lo_dis = y[test][dis], lo[dis][:, :N]
    shipped_probs = crossval.disease_probabilities(lo[dis], temperature, top, by_unknown)  # the differential as served
    m = metrics.classification_metrics(y_dis, shipped_probs, config.CLASS_IDS)
    m["ece_before_scaling"] = metrics.expected_calibration_error(softmax(lo_dis), y_dis)
    m["ece_one_temperature"] = metrics.expected_calibration_error(softmax(lo_dis, temperature), y_dis)
    m["ece_after_scaling"] = m["ece"]
    table = crossval.summarise(feats, loso, temperature, rule, fitted, report_only, by_unknown)
    table["summary"]["non_skin_accepted"] = ns_accepted
    print(f"  test top-1 {m['accuracy']:.3f}, decisions {json.dumps(decisions)}")
    print(f"  leave-one-source-out: {json.dumps(table['summary'])}")

    print("[4/4] write")
    (model_dir / "calibration.json").write_text(json.dumps({
        "temperature": temperature, "by_unknown": by_unknown,
        "fitted_on": f"lowest ECE averaged over the held-out sources, photos of the 8: temperature (the unknown score's) "
                     f"on folds {', '.join(fitted)}; by_unknown (the differential's, per photo t0 * exp(slope * unknown "
                     f"score)) on folds {', '.join(folds_run)}, photos of the infections each fold could name"}, indent=2))
    np.savez_compressed(model_dir / "gates.npz", skin_weights=gate.coef_[0].astype(np.float32))
    (model_dir / "gates.json").write_text(json.dumps({
        "skin": {"bias": float(gate.intercept_[0]), "threshold": skin_threshold},
        "unknown": {k: rule[k] for k in ("method", "top_diseases", "threshold", "confident")},
        "report": {"skin_method": "logistic regression on the L2-normalised embedding: train+val skin photos of every "
                                  "source (clean and photo-condition views; the 8, other conditions and healthy skin "
                                  "weigh the same) vs half of non_skin; the threshold rejects at most "
                                  f"{crossval.SKIN_REJECT_RATE:.1%} of each kind's photos, scored out of fold "
                                  "(grouped 5-fold)",
                   "skin_out_of_fold": skin_report,
                   "non_skin_accepted": {"n": int(report_ns.sum()), "rate": ns_accepted,
                                         "given_a_disease": ns_given_disease},
                   "real_skin_rejected_test": float(1 - sk.mean()),
                   "tier_method": f"three tiers from the 9-way head (8 infections + other), temperature {temperature:.2f}: "
                                  f"disease if the likeliest infection has probability >= {rule['confident']:.2f}, else "
                                  f"unknown if 1 - the summed probability of the {top} likeliest >= {rule['threshold']:.2f}, "
                                  "else uncertain. Set on the leave-one-source-out folds for the worst held-out source: "
                                  f"the unknown threshold calls at most {config.TIER_MAX_NONE_OF_8:.0%} of any source's "
                                  "photos of the 8 unknown; the confident threshold gives a confident disease to at most "
                                  f"{config.TIER_MAX_OTHER_MEAN:.0%} of other-condition photos on average, "
                                  f"{config.TIER_MAX_OTHER_WORST:.0%} on any source, {config.TIER_MAX_HEALTHY:.0%} of any "
                                  "source's healthy skin",
                   "tier_rule_met": rule["met"]}}, indent=2))
    metrics.plot_confusion(m["confusion_matrix"]["matrix"], config.CLASS_IDS, model_dir / "confusion_matrix.png",
                           "Grouped test split, 8 infections")
    metrics.plot_reliability({"T=1": (softmax(lo_dis), y_dis), f"T={temperature:.2f}": (softmax(lo_dis, temperature), y_dis),
                              "per-photo T": (shipped_probs, y_dis)},
                             model_dir / "reliability.png")
    m.update({"model": {"name": config.MODEL_NAME, "version": json.loads((model_dir / "labels.json").read_text())["version"],
                        "backbone": training["backbone"], "input_size": training["input_size"], "temperature": temperature,
                        "head": f"9 classes (8 + other), {training['weighting']}-balanced loss weights",
                        "unknown_threshold": rule["threshold"], "unknown_top_diseases": top,
                        "confident_threshold": rule["confident"]},
              "test_decisions": decisions, "test_by_source": by_source, "training": training,
              "split": {s: {"photos": int(masks[s].sum()), "groups": int(len(set(groups[masks[s]])))} for s in masks}})
    (model_dir / "metrics.json").write_text(json.dumps(m, indent=2))
    (model_dir / "crossval.json").write_text(json.dumps({
        "method": "fine-tuned fold models (training.train --holdout-source)", "folds": folds_run,
        "held_out_sources": held_sources, "fitted_on": fitted,
        "report_only": {s: crossval.REPORT_ONLY[s] for s in report_only}, "temperature": temperature,
        "by_unknown": by_unknown, "nested_ece": nested, "rule": rule, "rules_tried": tried, "table": table,
        "out_of_scope_by_condition": crossval.out_of_scope_by_condition(feats, loso, temperature, rule, fitted),
        "by_infection": crossval.by_infection(feats, loso, temperature, rule, fitted),
        "operating_curve": curve, "fold_training": {f: json.loads((Path(args.folds) / f / "training.json").read_text())
                                                    for f in folds_run}}, indent=1))
    model_card.main(["--model", str(model_dir)])


if __name__ == "__main__":
    main()
