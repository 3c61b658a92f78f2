"""Fit the skin and unknown gates on the shipped model's embeddings; write gates.json / gates.npz.

    .venv/bin/python -m training.gates [--model DIR]          (make gates; also run by make train)

Data (../shared/data): skin8/train (in scope; the model's own grouped split), other_conditions (out of
scope: the conditions in config.UNKNOWN_HOLDOUT_CONDITIONS are never fitted on), non_skin (everyday photos).
Every figure is measured on images the gate was not fitted on.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_predict
from tqdm import tqdm

from skinscan import config
from skinscan.classifier import KerasClassifier
from skinscan.preprocess import to_model_input
from skinscan.skin_gate import SkinGate, _unit
from skinscan.unknown_gate import METHODS, method_scores
from training import data, model_card
from training.metrics import auroc

SKIN_CALIBRATION_REJECT = 0.005  # threshold: <= 0.5% of skin photos rejected out-of-fold (margin under the 1% bar)


def embed_paths(clf: KerasClassifier, paths, batch=32, desc="embed", transform=None):
    """(logits, embeddings) of the photos at ``paths``; ``transform(rgb)`` is applied first when given."""
    logits, embs = [], []
    for i in tqdm(range(0, len(paths), batch), desc=desc, unit="batch"):
        x = np.stack([to_model_input((transform or (lambda im: im))(data.load_rgb(p))) for p in paths[i : i + batch]])
        lo, em = clf.forward(x)
        logits.append(lo)
        embs.append(em)
    return np.concatenate(logits), np.concatenate(embs)


def rates(scores, threshold, above_is_positive=True):
    s = np.asarray(scores)
    return float(np.mean(s >= threshold) if above_is_positive else np.mean(s < threshold)) if len(s) else None


def threshold_for_rate(scores: np.ndarray, rate: float) -> float:
    """A threshold with at most ``rate`` of ``scores`` at or above it (midway between two neighbouring scores)."""
    s = np.sort(np.asarray(scores))[::-1]
    k = int(np.floor(rate * len(s)))
    return float((s[k - 1] + s[k]) / 2) if k > 0 else float(s[0] + 1e-6)


def halves(paths, seed):
    """Seeded grouped 50/50 split of a folder's files (near-duplicates stay together)."""
    groups = data.group_near_duplicates([data.dhash(data.load_rgb(p)) for p in paths])
    ids = sorted(set(groups))
    random.Random(seed).shuffle(ids)
    first = set(ids[: len(ids) // 2])
    return [g in first for g in groups]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(config.MODEL_DIR))
    ap.add_argument("--data-root", default=str(config.DATA_ROOT))
    args = ap.parse_args(argv)
    model_dir, root = Path(args.model), Path(args.data_root)
    split = json.loads((model_dir / "split.json").read_text())
    clf = KerasClassifier(model_dir)
    rng_seed = split["seed"]

    # --- embeddings of every photo -------------------------------------------------------
    train_dir = root / "skin8" / "train"
    in_files = sorted(split["files"])
    in_split = np.array([split["files"][f]["split"] for f in in_files])
    in_dermnet = np.array([data.is_atlas_photo(f) for f in in_files])
    in_logits, in_emb = embed_paths(clf, [train_dir / f for f in in_files], desc="skin8")
    other = data.list_images(root / "other_conditions")
    oe = split["outlier_exposure"]
    other_paths = [p for p, _ in other]
    other_cond = np.array([c for _, c in other])
    held = np.isin(other_cond, split["unknown_holdout_conditions"])
    other_rel = [p.relative_to(root / "other_conditions").as_posix() for p in other_paths]
    other_oe_split = np.array([oe.get(r, "heldout") for r in other_rel])
    other_logits, other_emb = embed_paths(clf, other_paths, desc="other_conditions")
    held_select = np.zeros(len(other_paths), bool)
    held_select[np.where(held)[0]] = halves([other_paths[i] for i in np.where(held)[0]], rng_seed)
    nonskin_paths = [p for p, _ in data.list_images(root, ["non_skin"])]
    ns_logits, ns_emb = embed_paths(clf, nonskin_paths, desc="non_skin")
    ns_fit = np.array(halves(nonskin_paths, rng_seed))

    arrays, report = {}, {}

    # --- skin gate: skin (skin8 train + other_conditions fitted) vs half of non_skin -----------------
    # Fitted on the photos plus augmented views: crops/flips/colour jitter of both sides, and darker-skin
    # renderings of the skin photos (the data is mostly light skin).
    rng = np.random.default_rng(rng_seed)
    pos_in = np.isin(in_split, ["train", "val"])  # never the test split; threshold comes from out-of-fold scores
    pos_other = np.isin(other_oe_split, ["train", "val"])  # never the held-out conditions
    pos_paths = [train_dir / f for f, m in zip(in_files, pos_in) if m] + [p for p, m in zip(other_paths, pos_other) if m]
    neg_paths = [p for p, fit in zip(nonskin_paths, ns_fit) if fit]
    pos_views = [embed_paths(clf, pos_paths, desc="skin: darker tone", transform=lambda im: data.darker_skin_tone(im, rng))[1],
                 embed_paths(clf, pos_paths, desc="skin: augmented", transform=lambda im: data.augment(im, rng))[1]]
    neg_views = [embed_paths(clf, neg_paths, desc=f"non-skin: augmented {k + 1}/3",
                             transform=lambda im: data.augment(im, rng))[1] for k in range(3)]
    pos_clean = np.concatenate([in_emb[pos_in], other_emb[pos_other]])
    pos_fit = np.concatenate([pos_clean, *pos_views])
    neg_fit = np.concatenate([ns_emb[ns_fit], *neg_views])
    x_skin = _unit(np.concatenate([pos_fit, neg_fit]))
    y_skin = np.r_[np.ones(len(pos_fit)), np.zeros(len(neg_fit))]
    photo = np.r_[np.tile(np.arange(len(pos_clean)), 3), len(pos_clean) + np.tile(np.arange(len(neg_paths)), 4)]
    lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000)
    # threshold from out-of-fold scores (all views of one photo in one fold): the 0.5% quantile of real skin
    oof = cross_val_predict(lr, x_skin, y_skin, groups=photo, cv=GroupKFold(5), method="predict_proba")[:, 1]
    threshold = float(min(0.5, np.quantile(oof[: len(pos_clean)], SKIN_CALIBRATION_REJECT)))
    lr.fit(x_skin, y_skin)
    gate = SkinGate(lr.coef_[0], lr.intercept_[0], threshold)
    dark_test = embed_paths(clf, [train_dir / f for f, s in zip(in_files, in_split) if s == "test"],
                            desc="skin8 test, darker tone", transform=lambda im: data.darker_skin_tone(im, rng))[1]
    eval_skin = {
        "skin8 test (in scope)": gate.scores(in_emb[in_split == "test"]),
        "skin8 test rendered with darker skin tone": gate.scores(dark_test),
        "skin8 test, DermNet atlas photos only": gate.scores(in_emb[(in_split == "test") & in_dermnet]),
        "held-out conditions (never fitted)": gate.scores(other_emb[held]),
    }
    eval_skin["all real skin never fitted on (skin8 test + held-out conditions)"] = np.concatenate(
        [eval_skin["skin8 test (in scope)"], eval_skin["held-out conditions (never fitted)"]])
    ns_report = gate.scores(ns_emb[~ns_fit])
    report["skin"] = {
        "method": "logistic regression on the L2-normalised EfficientNet embedding, fitted with augmented and "
                  "darker-skin-tone views",
        "threshold": threshold,
        "fitted_on": {"skin": int(len(pos_fit)), "non_skin": int(neg_fit.shape[0])},
        "real_skin_rejected": {k: {"n": int(len(v)), "rate": rates(v, threshold, False)} for k, v in eval_skin.items()},
        "non_skin_accepted": {"n": int(len(ns_report)), "rate": rates(ns_report, threshold)},
    }
    arrays["skin_weights"] = gate.weights.astype(np.float32)

    # --- unknown gate: compare methods on held-out conditions ------------------------------------
    tr = in_split == "train"
    u_tr = _unit(in_emb[tr])
    center = u_tr.mean(axis=0)
    pca = PCA(n_components=min(128, len(u_tr) - 1), whiten=True, random_state=0).fit(u_tr - center)
    proj = (pca.components_.T / np.sqrt(pca.explained_variance_)).astype(np.float64)
    y_tr = np.array([clf.labels.index(Path(f).parts[0]) for f in np.array(in_files)[tr]])
    p_tr = (u_tr - center) @ proj
    arrays["maha_center"], arrays["maha_projection"] = center, proj
    arrays["maha_means"] = np.stack([p_tr[y_tr == k].mean(axis=0) for k in range(len(clf.labels))])
    oe_train = other_emb[other_oe_split == "train"]
    x_ood = _unit(np.concatenate([in_emb[tr], oe_train]))
    ood_center, ood_scale = x_ood.mean(axis=0), x_ood.std(axis=0) + 1e-6
    # DermNet-atlas photos of the 8 get extra weight so the head cannot separate by photo source alone
    w_in = np.where(in_dermnet[tr], 4.0, 1.0)
    ood = LogisticRegression(C=0.05, class_weight="balanced", max_iter=5000)
    ood.fit((x_ood - ood_center) / ood_scale, np.r_[np.zeros(tr.sum()), np.ones(len(oe_train))],
            sample_weight=np.r_[w_in, np.ones(len(oe_train))])
    arrays.update(ood_center=ood_center, ood_scale=ood_scale, ood_weights=ood.coef_[0], ood_bias=ood.intercept_[0])

    def scores(method, logits, emb):
        return method_scores(method, logits, emb, arrays, clf.temperature)

    va, te = in_split == "val", in_split == "test"
    comparison = {}
    for m in METHODS:
        s_val, s_test = scores(m, in_logits[va], in_emb[va]), scores(m, in_logits[te], in_emb[te])
        s_sel = scores(m, other_logits[held & held_select], other_emb[held & held_select])
        s_rep = scores(m, other_logits[held & ~held_select], other_emb[held & ~held_select])
        comparison[m] = {
            "auroc_selection": auroc(s_val, s_sel),
            "auroc_heldout_report": auroc(s_test, s_rep),
            "auroc_heldout_report_dermnet_only": auroc(scores(m, in_logits[te & in_dermnet], in_emb[te & in_dermnet]), s_rep)
            if (te & in_dermnet).any() else None,
        }
    best = max(METHODS, key=lambda m: comparison[m]["auroc_selection"])
    s_val = scores(best, in_logits[va], in_emb[va])
    # 5% of all in-scope validation photos. (Tried: weighting the two photo sources half each; the threshold then
    # rose so far that only 8-39% of the held-out conditions were caught, so the plain rate is kept and the
    # atlas photos' own false-unknown rate is reported beside it.)
    u_threshold = threshold_for_rate(s_val, config.UNKNOWN_FALSE_RATE)
    s_test = scores(best, in_logits[te], in_emb[te])
    per_condition = {
        c: rates(scores(best, other_logits[(other_cond == c) & ~held_select], other_emb[(other_cond == c) & ~held_select]), u_threshold)
        for c in split["unknown_holdout_conditions"]
    }
    report["unknown"] = {
        "method": best, "threshold": u_threshold, "comparison": comparison,
        "selection": "highest AUROC: in-scope validation vs half of the held-out conditions",
        "heldout_conditions": split["unknown_holdout_conditions"],
        "auroc_heldout": comparison[best]["auroc_heldout_report"],
        "false_unknown_rate": {"validation": rates(s_val, u_threshold),
                               "validation_dermnet_only": rates(s_val[in_dermnet[va]], u_threshold),
                               "test": rates(s_test, u_threshold),
                               "test_dermnet_only": rates(scores(best, in_logits[te & in_dermnet], in_emb[te & in_dermnet]), u_threshold)},
        "heldout_detected_rate": per_condition,
        "non_skin_flagged_unknown": rates(scores(best, ns_logits, ns_emb), u_threshold),
        "n": {"in_val": int(va.sum()), "in_test": int(te.sum()), "heldout_select": int((held & held_select).sum()),
              "heldout_report": int((held & ~held_select).sum()), "outlier_exposure_fit": int(len(oe_train))},
    }
    # the classifier alone, on test photos by source (the DermNet atlas photos are the "other source" here)
    y_in = np.array([clf.labels.index(f.split("/")[0]) for f in in_files])
    report["classifier_test_by_source"] = {
        name: {"n": int(m.sum()), "accuracy": float((in_logits[m].argmax(1) == y_in[m]).mean()) if m.any() else None}
        for name, m in {"Kaggle collection": te & ~in_dermnet, "DermNet NZ atlas": te & in_dermnet}.items()
    }
    keep = {"skin_weights"} | ({"maha_center", "maha_projection", "maha_means"} if best == "mahalanobis" else set()) \
        | ({"ood_center", "ood_scale", "ood_weights", "ood_bias"} if best.startswith("learned") else set())
    np.savez_compressed(model_dir / "gates.npz", **{k: np.asarray(v, np.float32) for k, v in arrays.items() if k in keep})
    params = {"skin": {"bias": float(gate.bias), "threshold": threshold},
              "unknown": {"method": best, "threshold": u_threshold}, "report": report}
    (model_dir / "gates.json").write_text(json.dumps(params, indent=2))
    print(json.dumps(report, indent=1))
    model_card.main(["--model", str(model_dir)])
    return params


if __name__ == "__main__":
    main()
