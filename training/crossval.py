"""Leave-one-source-out evaluation: how skinscan does on a photo source it has never seen.

    .venv/bin/python -m training.crossval [--backbone lite2] [--out FILE.json] [--list-folds]

The folds (``fold_names``): one per source with photos of the 8, and ``out_of_scope``, which holds out every source
without any at once; make crossval fine-tunes a model per fold (``training.train --holdout-source``). This module also
holds the shared decision code: the three tiers per photo (``decide``), a source's figures (``report_source``: named,
useful, uncertain, none of the 8; other conditions and healthy skin given a confident disease), the tier thresholds
(``choose_tiers``) and the temperatures that ``training.calibrate`` fits on the folds' predictions, never on a test split.

Run as a command, it compares head settings (weighting, C, colour constancy, backbone) on cached frozen-backbone
embeddings (``training.features``): each fold fits the head and the skin gate without its source, and a "grouped"
fold is the usual split within all sources (near-duplicate groups never straddle it).
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from skinscan import config, unknown_gate
from skinscan.skin_gate import _unit
from skinscan.unknown_gate import unknown_scores
from training import data, features, metrics

HEAD_LABELS = config.CLASS_IDS + [config.OTHER_LABEL]
OUT_OF_SCOPE_FOLD = "out_of_scope"  # the fold that holds out, at once, every skin source without photos of the 8
SKIN_REJECT_RATE = 0.005  # the skin gate's threshold: no kind of skin photo loses more than this, out of fold
# inverse L2 strength of the skin gate: the lowest out-of-fold non-skin acceptance of 1, 3, 10, 30 at that threshold
# (experiments.json "skin gate: kind-balanced weights, out-of-fold threshold")
SKIN_GATE_C = 10.0
MIN_FOLD_PHOTOS = 10  # a fold "can name" an infection it had this many training photos of (``nameable``)
# folds reported but not used to fit the temperature and thresholds (training.calibrate), and why
REPORT_ONLY = {"kaggle": "without the Kaggle collection the training set has one larva migrans photo and few of chickenpox "
                         "and shingles, so this fold cannot name them well: reported, not fitted on (only its photos of "
                         "the infections it can name join the fit of the differential's per-photo temperature)"}


def out_of_scope_sources(feats) -> list[str]:
    """Skin-photo sources with no photo of the 8 (atlases of other conditions, bites, healthy skin)."""
    skin, sources = feats["y"] >= 0, feats["sources"]
    return sorted(str(s) for s in set(sources[skin]) - set(sources[feats["kinds"] == "disease"]))


def fold_names(feats) -> list[str]:
    """The leave-one-source-out folds: one per source with photos of the 8, then ``OUT_OF_SCOPE_FOLD`` (whatever
    sources ``../shared/data`` holds: new ones join without code changes)."""
    in_scope = sorted(str(s) for s in set(feats["sources"][feats["kinds"] == "disease"]))
    return in_scope + ([OUT_OF_SCOPE_FOLD] if out_of_scope_sources(feats) else [])


def held_out_sources(feats, folds) -> list[str]:
    """The sources the ``folds`` hold out, in fold order (the out_of_scope fold holds several)."""
    return list(dict.fromkeys(str(s) for f in folds for s in sorted(set(feats["sources"][held_out(feats, f)]))))


def held_out(feats, fold: str) -> np.ndarray:
    """Mask of the photos a fold never sees: its source, or for ``OUT_OF_SCOPE_FOLD`` every out-of-scope-only source."""
    return np.isin(feats["sources"], out_of_scope_sources(feats) if fold == OUT_OF_SCOPE_FOLD else [fold])


def head_targets(records) -> np.ndarray:
    """Head class index per record: one of the 8, or "other" for other conditions and healthy skin; -1 for non-skin."""
    idx = {c: i for i, c in enumerate(config.CLASS_IDS)}
    other = len(config.CLASS_IDS)
    return np.array([idx[r["label"]] if r["kind"] == "disease" else other if r["kind"] in ("other", "healthy") else -1
                     for r in records])


def sample_weights(y, sources, weighting: str) -> np.ndarray:
    """Loss weights per photo: every class weighs the same in total, and with ``source`` every source within a
    class too (``source_sqrt``: half-way, 1/sqrt of the source's count). ``deconfounded``: ``source_sqrt``, then
    within each source that has both, its photos of the 8 and its out-of-scope photos reweighted to the overall
    ratio, so that a source's look does not predict "other" (the Kaggle collection has only photos of the 8)."""
    w = np.zeros(len(y))
    for k in np.unique(y):
        in_k = y == k
        if weighting == "class":
            w[in_k] = 1.0
        else:
            counts = Counter(sources[in_k])
            power = 1.0 if weighting == "source" else 0.5
            w[in_k] = [1.0 / counts[s] ** power for s in sources[in_k]]
        w[in_k] /= w[in_k].sum()
    if weighting == "deconfounded":
        out = y >= len(config.CLASS_IDS)
        ratio = w[out].sum() / w[~out].sum()
        for s in np.unique(sources):
            m = sources == s
            if (m & out).any() and (m & ~out).any():
                total, r = w[m].sum(), w[m & out].sum() / w[m & ~out].sum()
                w[m & out] *= np.sqrt(ratio / r)
                w[m & ~out] *= np.sqrt(r / ratio)
                w[m] *= total / w[m].sum()
    return w * len(y) / w.sum()


def fit_head(x_views, y, sources, weighting: str, c: float):
    """Multinomial logistic head on L2-normalised embeddings (every view of a photo weighted the same)."""
    w = sample_weights(y, sources, weighting)
    x = np.concatenate([_unit(v) for v in x_views])
    head = LogisticRegression(C=c, max_iter=1000)
    head.fit(x, np.tile(y, len(x_views)), sample_weight=np.tile(w, len(x_views)))
    return head


def head_logits(head, emb) -> np.ndarray:
    """Logits of every head class (columns in HEAD_LABELS order even where a class had no training photo)."""
    out = np.full((len(emb), len(HEAD_LABELS)), -30.0)
    out[:, head.classes_] = head.decision_function(_unit(emb))
    return out


def fit_skin_gate(skin_views, skin_kinds, skin_groups, nonskin_views, nonskin_groups, c: float = SKIN_GATE_C):
    """Logistic skin-vs-everyday-photo gate on unit embeddings; each kind of skin photo (the 8, other conditions,
    healthy) weighs the same, and skin as much as non-skin. The threshold is the highest that rejects at most
    ``SKIN_REJECT_RATE`` of every kind's clean photos, scored out of fold (grouped 5-fold): in-sample scores are too
    sure of themselves, and healthy feet (the fewest photos, often whole-scene shots) were rejected most.
    -> (gate, threshold, out-of-fold report)."""
    kind = np.r_[np.tile(skin_kinds, len(skin_views)), np.full(len(nonskin_groups) * len(nonskin_views), "non_skin")]
    groups = np.r_[np.tile(skin_groups, len(skin_views)), np.tile(nonskin_groups, len(nonskin_views))]
    x, y = _unit(np.concatenate(skin_views + nonskin_views)), (kind != "non_skin").astype(int)
    w = np.zeros(len(y))
    for k in np.unique(kind):
        w[kind == k] = 1.0 / (kind == k).sum()
    w[y == 1] /= w[y == 1].sum()
    w[y == 0] /= w[y == 0].sum()
    w *= len(y) / 2

    def fit(rows):
        return LogisticRegression(C=c, max_iter=5000).fit(x[rows], y[rows], sample_weight=w[rows])

    oof = np.zeros(len(y))
    for fit_rows, score_rows in GroupKFold(5).split(x, y, groups):
        oof[score_rows] = fit(fit_rows).predict_proba(x[score_rows])[:, 1]
    clean = np.r_[[i == 0 for i, v in enumerate(skin_views) for _ in v],  # the first view of each is the clean one
                  [i == 0 for i, v in enumerate(nonskin_views) for _ in v]]
    kinds = np.unique(skin_kinds)
    threshold = float(min(np.quantile(oof[clean & (kind == k)], SKIN_REJECT_RATE) for k in kinds))
    report = {"out_of_fold_rejected": {str(k): float((oof[clean & (kind == k)] < threshold).mean()) for k in kinds},
              "out_of_fold_non_skin_accepted": float((oof[clean & (y == 0)] >= threshold).mean())}
    return fit(np.arange(len(y))), threshold, report


def one_per_group(groups, mask) -> np.ndarray:
    """``mask`` reduced to the first photo of each near-duplicate group (the hidden sets are deduplicated)."""
    seen, keep = set(), np.zeros(len(groups), bool)
    for i in np.where(mask)[0]:
        if groups[i] not in seen:
            seen.add(groups[i])
            keep[i] = True
    return keep


def heldout_photos(feats, fold, test) -> np.ndarray:
    """The photos a fold model is scored on: the skin photos it never saw (``held_out``), one per near-duplicate
    group, never a test-split photo (``test``: mask). training.calibrate and compare_folds share them (heldout.npz)."""
    return one_per_group(feats["groups"], held_out(feats, fold) & (feats["y"] >= 0) & ~test)


def fold_predictions(feats, train, test, weighting, c, nonskin_fit):
    """Fit head and skin gate on ``train`` (mask); logits and skin decisions for ``test`` (mask)."""
    y, sources = feats["y"], feats["sources"]
    views = [k for k in feats if k == "clean" or k == "flip" or k.startswith("aug")]
    fit = train & (y >= 0)
    head = fit_head([feats[v][fit] for v in views], y[fit], sources[fit], weighting, c)
    gate, skin_threshold, _ = fit_skin_gate([feats[v][fit] for v in views], feats["kinds"][fit], feats["groups"][fit],
                                            [feats[v][nonskin_fit] for v in views], feats["groups"][nonskin_fit])
    logits = head_logits(head, feats["clean"][test])  # one forward pass, as served
    skin = gate.predict_proba(_unit(feats["clean"][test]))[:, 1] >= skin_threshold
    return logits, skin


def load_features(name: str, colour_constancy: bool = False, path=None) -> dict:
    f = features.load(name, colour_constancy, path)
    recs = f.pop("records")
    f["y"] = head_targets(recs)
    f["sources"] = np.array([r["source"] for r in recs])
    f["kinds"] = np.array([r["kind"] for r in recs])
    return f


def fit_half(mask: np.ndarray) -> np.ndarray:
    """Every other photo of ``mask`` (in catalogue order): the half a gate is fitted on; the rest is reported."""
    return mask & (np.cumsum(mask) % 2 == 1)


def grouped_masks(feats, seed=config.SEED):
    """Grouped train/val/test split over every skin photo (stratified by head class, groups kept whole)."""
    skin = feats["y"] >= 0
    labels = [f"{s}:{y}" for s, y in zip(feats["sources"], feats["y"])]
    split = np.array(["none"] * len(labels), dtype=object)
    idx = np.where(skin)[0]
    split[idx] = data.grouped_split(list(feats["groups"][idx]), [labels[i] for i in idx], config.SPLIT_FRACTIONS, seed)
    return {s: split == s for s in ("train", "val", "test")}


def run_folds(feats, weighting, c, seed=config.SEED):
    """Out-of-source logits for every skin photo, plus the grouped split's validation and test logits."""
    n = len(feats["y"])
    nonskin = feats["kinds"] == "non_skin"
    nonskin_fit = fit_half(nonskin)
    out = {"logits": np.zeros((n, len(HEAD_LABELS))), "skin": np.ones(n, bool), "fold": np.array([""] * n, dtype=object)}
    for fold in fold_names(feats):
        held = held_out(feats, fold)
        test = one_per_group(feats["groups"], held & (feats["y"] >= 0))
        logits, skin = fold_predictions(feats, ~held, test, weighting, c, nonskin_fit)
        out["logits"][test], out["skin"][test], out["fold"][test] = logits, skin, feats["sources"][test]
    masks = grouped_masks(feats, seed)
    for part in ("val", "test"):
        sel = one_per_group(feats["groups"], masks[part])
        logits, skin = fold_predictions(feats, masks["train"], sel, weighting, c, nonskin_fit)
        out[f"grouped_{part}"] = {"mask": sel, "logits": logits, "skin": skin}
    # non-skin never fitted: accepted by a gate fitted on every skin photo
    held_ns = nonskin & ~nonskin_fit
    _, skin_ns = fold_predictions(feats, np.ones(n, bool), held_ns, weighting, c, nonskin_fit)
    out["non_skin_accepted"] = {"n": int(held_ns.sum()), "rate": float(skin_ns.mean())}
    return out


def decide(logits, skin, temperature, rule):
    """The pipeline's verdict per photo (not_skin, unknown, uncertain or disease) under ``rule`` ({"threshold",
    "confident", "top_diseases"}, as gates.json "unknown"), and the likeliest disease per photo."""
    tier = unknown_gate.tiers(logits, temperature, len(config.CLASS_IDS), rule["top_diseases"], rule["threshold"],
                              rule.get("confident", 0.0))
    return np.where(~skin, "not_skin", tier), logits[:, : len(config.CLASS_IDS)].argmax(axis=1)


def disease_probabilities(logits, temperature, top=1, by_unknown=None) -> np.ndarray:
    """The calibrated 8-way differential of rows of head logits, as the pipeline gives it."""
    return unknown_gate.disease_probabilities(logits, temperature, len(config.CLASS_IDS), top, by_unknown)


def named_and_useful(logits, verdict, pred, y):
    """Per photo of the 8: *named* (a confident disease, the true one) and *useful* (named, or uncertain with the true one
    among the two likeliest it names)."""
    top2 = np.argsort(-logits[:, : len(config.CLASS_IDS)], axis=1)[:, :2]
    named = (verdict == "disease") & (pred == y)
    return named, named | ((verdict == "uncertain") & (top2 == y[:, None]).any(axis=1))


def report_source(feats, mask, logits, skin, temperature, rule, by_unknown=None):
    """A source's figures under ``rule``. Photos of the 8: *named* (``right_answer``: a confident disease, the true one),
    *useful* (named, or uncertain with the true one among the two it names), uncertain, none-of-8 (``called_unknown``),
    top-1, ECE. Other conditions and healthy skin: given a confident disease, uncertain, unknown."""
    y, kinds = feats["y"][mask], feats["kinds"][mask]
    verdict, pred = decide(logits, skin, temperature, rule)
    out = {}
    dis = kinds == "disease"
    if dis.any():
        probs8 = disease_probabilities(logits[dis], temperature, rule["top_diseases"], by_unknown)
        named, useful = named_and_useful(logits[dis], verdict[dis], pred[dis], y[dis])
        out["in_scope"] = {
            "n": int(dis.sum()),
            "right_answer": float(np.mean(named)),
            "useful": float(np.mean(useful)),
            "uncertain": float(np.mean(verdict[dis] == "uncertain")),
            "top1": float(np.mean(pred[dis] == y[dis])),
            "called_unknown": float(np.mean(verdict[dis] == "unknown")),
            "rejected_not_skin": float(np.mean(verdict[dis] == "not_skin")),
            "ece": metrics.expected_calibration_error(probs8, y[dis]),
        }
        sure = verdict[dis] == "disease"  # what a user is told: the probability shown beside the disease, and how often right
        if sure.any():
            out["in_scope"]["named"] = {"n": int(sure.sum()), "right": float(np.mean(pred[dis][sure] == y[dis][sure])),
                                        "mean_probability": float(probs8[sure].max(axis=1).mean())}
    for kind in ("other", "healthy"):
        sel = kinds == kind
        if sel.any():
            out[kind] = {"n": int(sel.sum()), "given_a_disease": float(np.mean(verdict[sel] == "disease")),
                         "uncertain": float(np.mean(verdict[sel] == "uncertain")),
                         "unknown": float(np.mean(verdict[sel] == "unknown")),
                         "rejected_not_skin": float(np.mean(verdict[sel] == "not_skin"))}
    return out


def report_held_out(feats, folds, source, temperature, rule, by_unknown=None) -> dict:
    """``report_source`` of one held-out source's rows of the fold predictions (``folds["fold"] == source``)."""
    m = folds["fold"] == source
    return report_source(feats, m, folds["logits"][m], folds["skin"][m], temperature, rule, by_unknown)


def out_of_scope_by_condition(feats, folds, temperature, rule, sources) -> dict:
    """Per other condition (and healthy skin) on the held-out sources: photos, the share given a confident disease and
    the share answered uncertain, and which diseases they were given (most often first): where a user with that
    condition will be misled. ``novel``: no other source has the condition, so its fold model never saw it at all."""
    out_of_scope = np.isin(feats["kinds"], ("other", "healthy"))
    sources_of = {}
    for path, source in zip(feats["paths"][out_of_scope], feats["sources"][out_of_scope]):
        sources_of.setdefault(Path(path).parent.name, set()).add(source)
    rows = {}
    for s in sources:
        m = (folds["fold"] == s) & out_of_scope
        verdict, pred = decide(folds["logits"][m], folds["skin"][m], temperature, rule)
        for path, v, d in zip(feats["paths"][m], verdict, pred):
            row = rows.setdefault(Path(path).parent.name, {"n": 0, "given": Counter(), "uncertain": 0})
            row["n"] += 1
            row["uncertain"] += v == "uncertain"
            if v == "disease":
                row["given"][config.CLASS_IDS[d]] += 1
    return {c: {"n": r["n"], "given_a_disease": sum(r["given"].values()) / r["n"], "uncertain": r["uncertain"] / r["n"],
                "novel": len(sources_of[c]) == 1, "as": dict(r["given"].most_common())}
            for c, r in sorted(rows.items(), key=lambda kv: -sum(kv[1]["given"].values()) / kv[1]["n"])}


def by_infection(feats, folds, temperature, rule, sources) -> dict:
    """Per infection, its photos of the held-out ``sources`` (each scored by the fold that never saw its source): n,
    top-1, named, useful, uncertain, none-of-8, and what the likeliest wrong infections were (count of photos, most
    often first): which of the 8 the model confuses on a new source (chickenpox, impetigo and shingles look alike)."""
    m = np.isin(folds["fold"], sources) & (feats["kinds"] == "disease")
    verdict, pred = decide(folds["logits"][m], folds["skin"][m], temperature, rule)
    y = feats["y"][m]
    named, useful = named_and_useful(folds["logits"][m], verdict, pred, y)
    out = {}
    for k, name in enumerate(config.CLASS_IDS):
        sel = y == k
        if sel.any():
            wrong = Counter(config.CLASS_IDS[d] for d in pred[sel & (pred != k)])
            out[name] = {"n": int(sel.sum()), "top1": float(np.mean(pred[sel] == k)), "named": float(np.mean(named[sel])),
                         "useful": float(np.mean(useful[sel])), "uncertain": float(np.mean(verdict[sel] == "uncertain")),
                         "none_of_8": float(np.mean(verdict[sel] == "unknown")), "taken_for": dict(wrong.most_common())}
    return out


def in_scope_sources(feats, folds, sources) -> list[str]:
    """Those of ``sources`` whose held-out photos include photos of the 8."""
    return [s for s in sources if ((folds["fold"] == s) & (feats["kinds"] == "disease")).any()]


def fit_temperature_loso(feats, folds, sources) -> float:
    """Temperature of the 8-way disease probabilities, fitted on out-of-source predictions of the 8: the lowest ECE
    averaged over the held-out sources (``metrics.fit_temperature_per_source``)."""
    by_source = []
    for s in in_scope_sources(feats, folds, sources):
        sel = (folds["fold"] == s) & (feats["kinds"] == "disease")
        by_source.append((folds["logits"][sel][:, : len(config.CLASS_IDS)], feats["y"][sel]))
    return metrics.fit_temperature_per_source(by_source)


def nameable(feats, source) -> np.ndarray:
    """Photos of the infections that the fold without ``source`` had at least ``MIN_FOLD_PHOTOS`` training photos of
    (the Kaggle fold has one larva migrans photo: it cannot name it, however calibrated)."""
    disease = feats["kinds"] == "disease"
    counts = np.bincount(feats["y"][disease & (feats["sources"] != source)], minlength=len(config.CLASS_IDS))
    return disease & np.isin(feats["y"], np.where(counts >= MIN_FOLD_PHOTOS)[0])


def fit_by_unknown_loso(feats, folds, temperature, top, sources) -> dict:
    """The differential's per-photo temperature (``metrics.fit_temperature_by_unknown``) on out-of-source predictions
    of the 8 the fold could name, each held-out source counting the same."""
    by_source = []
    for s in in_scope_sources(feats, folds, sources):
        sel = (folds["fold"] == s) & nameable(feats, s)
        lo = folds["logits"][sel]
        by_source.append((lo[:, : len(config.CLASS_IDS)], feats["y"][sel],
                          unknown_scores(lo, temperature, len(config.CLASS_IDS), top)))
    return metrics.fit_temperature_by_unknown(by_source)


def nested_ece(feats, folds, top, sources, report_only=()) -> dict:
    """ECE on each held-out source of the calibration fitted on the *other* held-out sources only (as
    ``training.calibrate`` fits it: the per-photo temperature on ``report_only`` folds too), one temperature and per
    photo. What to expect on a source none of the fit saw (the table's ECE is in-sample); none with one source."""
    out = {}
    sources = in_scope_sources(feats, folds, sources)
    for s in sources if len(sources) > 1 else ():
        rest = [o for o in sources if o != s]
        t = fit_temperature_loso(feats, folds, rest)
        by_unknown = fit_by_unknown_loso(feats, folds, t, top, [*rest, *report_only])
        sel = (folds["fold"] == s) & (feats["kinds"] == "disease")
        lo, y = folds["logits"][sel], feats["y"][sel]
        out[s] = {"one_temperature": metrics.expected_calibration_error(disease_probabilities(lo, t, top), y),
                  "per_photo_temperature": metrics.expected_calibration_error(disease_probabilities(lo, t, top, by_unknown), y)}
    return out


TIER_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)


def choose_tiers(feats, folds, temperature, sources, top=config.UNKNOWN_TOP_DISEASES, max_none_of_8=config.TIER_MAX_NONE_OF_8,
                 max_other_mean=config.TIER_MAX_OTHER_MEAN, max_other_worst=config.TIER_MAX_OTHER_WORST,
                 max_healthy=config.TIER_MAX_HEALTHY) -> dict:
    """The two thresholds of the three tiers, on the held-out ``sources`` (never a test split), for the worst source:
    the unknown threshold is the lowest that calls at most ``max_none_of_8`` of every source's photos of the 8 "unknown";
    the confident threshold the lowest (the most named) that gives a confident disease to at most ``max_other_mean`` of
    the other-condition photos on average over the sources, ``max_other_worst`` on any one, and ``max_healthy`` of any
    source's healthy skin. -> the rule ({"top_diseases", "threshold", "confident"}) with the figures it met."""
    def figures(rule) -> dict:  # the worst and mean figures over the sources under a rule
        reps = [report_held_out(feats, folds, s, temperature, rule) for s in sources]
        ins = [r["in_scope"] for r in reps if "in_scope" in r]
        other = [r["other"]["given_a_disease"] for r in reps if "other" in r]
        healthy = [r["healthy"]["given_a_disease"] for r in reps if "healthy" in r]
        return {"none_of_8_worst": max(r["called_unknown"] for r in ins),
                "other_given_a_disease_mean": float(np.mean(other)) if other else 0.0,
                "other_given_a_disease_worst": max(other, default=0.0),
                "healthy_given_a_disease_worst": max(healthy, default=0.0),
                "named_mean": float(np.mean([r["right_answer"] for r in ins])),
                "useful_mean": float(np.mean([r["useful"] for r in ins]))}

    rule = {"method": "other_class", "top_diseases": int(top), "threshold": 1.0, "confident": 1.01}
    for t in TIER_GRID:  # the unknown answer comes first: its rate does not depend on the confident threshold
        if figures({**rule, "threshold": t})["none_of_8_worst"] <= max_none_of_8:
            rule["threshold"] = float(t)
            break
    for c in TIER_GRID:
        f = figures({**rule, "confident": c})
        if (f["other_given_a_disease_mean"] <= max_other_mean and f["other_given_a_disease_worst"] <= max_other_worst
                and f["healthy_given_a_disease_worst"] <= max_healthy):
            rule["confident"] = float(c)
            break
    rule["met"] = figures(rule)
    return rule


def operating_curve(feats, folds, temperature, sources, rule, grid=np.round(np.arange(0.1, 1.0, 0.1), 2)) -> list:
    """Per confident threshold (the unknown threshold as chosen): each held-out source's named and useful shares and its
    other/healthy photos given a confident disease (what the threshold trades, for the model card)."""
    rows = []
    for c in grid:
        row = {"confident": float(c)}
        for s in sources:
            r = report_held_out(feats, folds, s, temperature, {**rule, "confident": c})
            row[s] = {k: round(r["in_scope"][k], 3) for k in ("right_answer", "useful")} if "in_scope" in r else {}
            row[s].update({k: round(r[k]["given_a_disease"], 3) for k in ("other", "healthy") if k in r})
        rows.append(row)
    return rows


def summarise(feats, folds, temperature, rule, sources, report_only=(), by_unknown=None) -> dict:
    """A row per held-out source (``report_only`` ones too), the grouped split's rows, and a summary over ``sources``."""
    table = {}
    for source in [*sources, *report_only]:
        table[source] = report_held_out(feats, folds, source, temperature, rule, by_unknown)
    for part in ("val", "test"):
        if f"grouped_{part}" in folds:
            g = folds[f"grouped_{part}"]
            table[f"grouped_{part}"] = report_source(feats, g["mask"], g["logits"], g["skin"], temperature, rule, by_unknown)
    ins = [table[s]["in_scope"] for s in sources if "in_scope" in table[s]]
    others = [table[s]["other"] for s in sources if "other" in table[s]]
    healthy = [table[s]["healthy"] for s in sources if "healthy" in table[s]]
    table["summary"] = {
        "right_answer_mean": float(np.mean([r["right_answer"] for r in ins])),
        "right_answer_worst": float(np.min([r["right_answer"] for r in ins])),
        "useful_mean": float(np.mean([r["useful"] for r in ins])), "useful_worst": float(np.min([r["useful"] for r in ins])),
        "none_of_8_worst": float(np.max([r["called_unknown"] for r in ins])),
        "other_given_disease_mean": float(np.mean([r["given_a_disease"] for r in others])),
        "other_given_disease_worst": float(np.max([r["given_a_disease"] for r in others])),
        "healthy_given_disease_worst": float(np.max([r["given_a_disease"] for r in healthy])) if healthy else None,
        "healthy_uncertain_mean": float(np.mean([r["uncertain"] for r in healthy])) if healthy else None,
        "ece_mean": float(np.mean([r["ece"] for r in ins])),
        "non_skin_accepted": folds.get("non_skin_accepted", {}).get("rate"),
    }
    return table


def evaluate_setting(feats, weighting, c):
    folds = run_folds(feats, weighting, c)
    sources = [s for s in sorted(set(folds["fold"]) - {""}) if s not in REPORT_ONLY]
    temperature = fit_temperature_loso(feats, folds, sources)
    rule = choose_tiers(feats, folds, temperature, sources)
    by_unknown = fit_by_unknown_loso(feats, folds, temperature, rule["top_diseases"], sources)
    return {"temperature": temperature, "by_unknown": by_unknown, "rule": rule,
            "table": summarise(feats, folds, temperature, rule, sources, [s for s in REPORT_ONLY if s in folds["fold"]],
                               by_unknown)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default=config.BACKBONE)
    ap.add_argument("--colour-constancy", action="store_true")
    ap.add_argument("--weighting", nargs="+", default=[config.HEAD_WEIGHTING], choices=["class", "source", "source_sqrt"])
    ap.add_argument("--c", nargs="+", type=float, default=[config.HEAD_C])
    ap.add_argument("--out", default=None, help="JSON to write (default: print only)")
    ap.add_argument("--list-folds", action="store_true", help="print the fold names (make crossval trains one model each)")
    args = ap.parse_args(argv)
    t0 = time.time()
    feats = load_features(args.backbone, args.colour_constancy)
    if args.list_folds:
        return print(" ".join(fold_names(feats)))
    results = {}
    for weighting in args.weighting:
        for c in args.c:
            key = f"{args.backbone}{'-cc' if args.colour_constancy else ''} weighting={weighting} C={c}"
            res = evaluate_setting(feats, weighting, c)
            results[key] = res
            s = res["table"]["summary"]
            print(f"{key}: named mean {s['right_answer_mean']:.3f} worst {s['right_answer_worst']:.3f} | useful mean "
                  f"{s['useful_mean']:.3f} worst {s['useful_worst']:.3f} | none-of-8 worst {s['none_of_8_worst']:.3f} | "
                  f"other->disease mean {s['other_given_disease_mean']:.3f} worst {s['other_given_disease_worst']:.3f} | "
                  f"healthy worst {s['healthy_given_disease_worst']:.3f} uncertain {s['healthy_uncertain_mean']:.3f} | "
                  f"ECE {s['ece_mean']:.3f} | non-skin {s['non_skin_accepted']:.3f} | T {res['temperature']:.2f} rule "
                  f"{res['rule']['threshold']:.2f}/{res['rule']['confident']:.2f} ({(time.time() - t0) / 60:.1f} min)", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
