"""The rules that turn fold predictions into the shipped decision: the unknown threshold and the model's
preprocessing setting. Synthetic logits with a known answer, checked against brute force."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from skinscan import config
from training import crossval

N = len(config.CLASS_IDS)


def synthetic_folds(rng):
    """Two held-out sources: photos of the 8 (confident and right, or unsure) and other conditions (some confident)."""
    kinds, ys, logits, fold = [], [], [], []
    for source, n_in, n_out in (("a", 40, 60), ("b", 30, 50)):
        for i in range(n_in + n_out):
            row = rng.normal(0, 0.3, N + 1)
            inside = i < n_in
            cls = int(rng.integers(0, N))
            row[cls] += rng.uniform(0.5, 5.0)  # how sure the head is of one disease
            if not inside:
                row[N] += rng.uniform(0.0, 4.0)
            kinds.append("disease" if inside else "other")
            ys.append(cls if inside else N)
            logits.append(row)
            fold.append(source)
    feats = {"y": np.array(ys), "kinds": np.array(kinds)}
    folds = {"logits": np.array(logits), "skin": np.ones(len(ys), bool), "fold": np.array(fold, dtype=object)}
    return feats, folds


def test_tiers_are_set_for_the_worst_source():
    """crossval.choose_tiers: the unknown threshold is the lowest that keeps every source's photos of the 8 called
    unknown within the cap, the confident threshold the lowest that keeps other conditions given a confident disease
    within the mean and worst caps; one grid step lower breaks them (checked by brute force)."""
    feats, folds = synthetic_folds(np.random.default_rng(0))
    caps = {"max_none_of_8": 0.1, "max_other_mean": 0.15, "max_other_worst": 0.2, "max_healthy": 0.05}
    rule = crossval.choose_tiers(feats, folds, 1.0, ["a", "b"], top=2, **caps)

    def figures(threshold, confident):
        r = {**rule, "threshold": threshold, "confident": confident}
        reps = [crossval.report_held_out(feats, folds, s, 1.0, r) for s in ("a", "b")]
        return (max(x["in_scope"]["called_unknown"] for x in reps), [x["other"]["given_a_disease"] for x in reps],
                np.mean([x["in_scope"]["right_answer"] for x in reps]), np.mean([x["in_scope"]["useful"] for x in reps]))

    none_of_8, other, named, useful = figures(rule["threshold"], rule["confident"])
    assert none_of_8 <= 0.1 and np.mean(other) <= 0.15 and max(other) <= 0.2
    assert figures(rule["threshold"] - 0.01, 1.01)[0] > 0.1  # a lower unknown threshold calls too many of the 8 unknown
    lower = figures(rule["threshold"], rule["confident"] - 0.01)[1]
    assert np.mean(lower) > 0.15 or max(lower) > 0.2
    assert 0 < named < useful <= 1 and rule["met"]["named_mean"] == pytest.approx(named)
    assert figures(rule["threshold"], 0.0)[2] > named  # the caps bind: naming every photo names more of them right


def test_three_tiers_from_the_head():
    """skinscan.unknown_gate.tiers: sure of one infection -> disease; split between two -> uncertain; put in "other" ->
    unknown; the gate reports the confidence and is_unknown alike."""
    from skinscan.unknown_gate import UnknownGate

    sure, split, other = np.full(N + 1, -4.0), np.full(N + 1, -4.0), np.full(N + 1, -4.0)
    sure[3] = 5.0
    split[[0, 1]] = 2.0
    other[N] = 4.0
    gate = UnknownGate.load({"method": "other_class", "top_diseases": 2, "threshold": 0.5, "confident": 0.8}, 1.0, N)
    answers = [gate.decide(row) for row in (sure, split, other)]
    assert [a["tier"] for a in answers] == ["disease", "uncertain", "unknown"]
    assert [a["is_unknown"] for a in answers] == [False, False, True]
    assert answers[0]["confidence"] > 0.8 > 0.5 > answers[1]["confidence"] > 0.4
    older = UnknownGate.load({"method": "other_class", "top_diseases": 2, "threshold": 0.5}, 1.0, N)  # gates before tiers
    assert older.decide(split)["tier"] == "disease" and older.decide(other)["tier"] == "unknown"
    both = np.r_[np.full(N, -9.0), 4.0]
    both[3] = 4.0 + np.log(1.5)  # 0.6 on one infection, 0.4 on "other": confident and unknown alike -> unknown first
    strict = UnknownGate.load({"method": "other_class", "top_diseases": 2, "threshold": 0.3, "confident": 0.5}, 1.0, N)
    assert strict.decide(both)["tier"] == "unknown" and strict.decide(both)["confidence"] == pytest.approx(0.6, abs=1e-3)


def test_unknown_score_counts_the_top_diseases():
    """Split between two infections: unknown by the top-1 score, in scope by the top-2 one; spread over many
    infections or put in "other": unknown by both."""
    from skinscan.unknown_gate import UnknownGate, unknown_scores

    two = np.full(N + 1, -4.0)
    two[[0, 1]] = 2.0  # chickenpox or shingles, say
    spread = np.zeros(N + 1)
    other = np.full(N + 1, -4.0)
    other[N] = 3.0
    scores = {top: unknown_scores(np.stack([two, spread, other]), 1.0, N, top) for top in (1, 2)}
    assert scores[2][0] < 0.05 < 0.45 < scores[1][0]
    assert min(scores[1][1], scores[2][1]) > 0.7 and min(scores[1][2], scores[2][2]) > 0.9
    gate = UnknownGate.load({"method": "other_class", "top_diseases": 2, "threshold": 0.3}, 1.0, N)
    assert not gate.decide(two)["is_unknown"] and gate.decide(spread)["is_unknown"] and gate.decide(other)["is_unknown"]
    assert UnknownGate.load({"method": "other_class", "threshold": 0.3}, 1.0, N).decide(two)["is_unknown"]  # older gates: top 1


def test_model_colour_constancy_setting_reaches_the_pipeline(tmp_path, model_dir, data_root):
    """labels.json's colour_constancy is applied by the serving pipeline (same preprocessing as in training)."""
    from skinscan.pipeline import Pipeline
    from skinscan.preprocess import to_model_input
    from training.data import load_rgb

    for name in ("labels.json", "calibration.json", "gates.json", "gates.npz", "quality.json"):
        shutil.copy(model_dir / name, tmp_path / name)
    meta = json.loads((tmp_path / "labels.json").read_text())
    photo = sorted((data_root / "skin8" / "train" / "cellulitis").iterdir())[0]
    shipped = Pipeline(model_dir).prepare(photo.read_bytes()).model_input
    (tmp_path / "labels.json").write_text(json.dumps({**meta, "colour_constancy": True}))
    corrected = Pipeline(tmp_path).prepare(photo.read_bytes()).model_input
    rgb = load_rgb(photo)
    assert np.array_equal(shipped, to_model_input(rgb, colour_constancy=bool(meta.get("colour_constancy", False))))
    assert np.array_equal(corrected, to_model_input(rgb, colour_constancy=True))
    assert not np.array_equal(shipped, corrected) or meta.get("colour_constancy")


def test_fold_comparison_refits_the_decision_per_variant():
    """training.compare_folds.variant_figures: a head that separates the 8 from other conditions and names every photo
    of the 8 right scores AUROC 1 and, under the tiers refitted on it, names all of them and gives no other condition a
    disease; one that names a third of them as another infection, as surely, loses them in top-1 and in named."""
    from training.compare_folds import variant_figures

    rng = np.random.default_rng(4)
    feats, folds = synthetic_folds(rng)
    feats["sources"] = folds["fold"].astype(str)
    rows = np.arange(len(feats["y"]))
    clean = rng.normal(0, 0.1, folds["logits"].shape)
    clean[rows, feats["y"]] += 6.0
    good = variant_figures(feats, {**folds, "logits": clean}, ["a", "b"])
    assert good["auroc_pooled"] == 1.0 and all(v["top1"] == 1.0 and v["auroc"] == 1.0 for v in good["per_source"].values())
    assert good["summary"]["right_answer_mean"] == good["summary"]["useful_mean"] == 1.0
    assert good["summary"]["other_given_disease_worst"] == 0.0
    wrong = clean.copy()
    named = rows[(feats["kinds"] == "disease") & (rows % 3 == 0)]  # a third of the photos of the 8, as surely wrong
    wrong[named, feats["y"][named]] -= 6.0
    wrong[named, (feats["y"][named] + 1) % N] += 6.0
    bad = variant_figures(feats, {**folds, "logits": wrong}, ["a", "b"])
    for s, v in bad["per_source"].items():
        assert v["named"] <= v["top1"] < good["per_source"][s]["top1"] and v["top1"] == pytest.approx(2 / 3, abs=0.05)
    assert variant_figures(feats, folds, ["a", "b"])["auroc_pooled"] < 1.0  # the noisy head of synthetic_folds


def test_temperature_counts_every_source_the_same():
    """training.metrics.fit_temperature_per_source: a large over-confident source does not decide the temperature
    of two smaller calibrated ones, as the pooled likelihood lets it."""
    from training import metrics

    rng = np.random.default_rng(5)

    def source(n, true_t):  # labels drawn from softmax(logits / true_t): calibrated at T = true_t
        logits = rng.normal(0, 3.0, (n, N))
        p = np.exp(logits / true_t - (logits / true_t).max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return logits, np.array([rng.choice(N, p=row) for row in p])

    small = [source(400, 1.0), source(400, 1.0)]
    big = source(4000, 3.0)
    pooled = metrics.fit_temperature(np.concatenate([s[0] for s in [*small, big]]), np.concatenate([s[1] for s in [*small, big]]))
    per_source = metrics.fit_temperature_per_source([*small, big])
    assert pooled > 2.0 and per_source < pooled
    assert 0.85 <= metrics.fit_temperature_per_source(small) <= 1.2


def test_loss_weights_balance_classes_and_deconfound_sources():
    """training.crossval.sample_weights: every class weighs the same (source_sqrt); ``deconfounded`` also gives each
    source with both kinds the same out-of-scope : in-scope ratio, so a source's look does not predict "other"."""
    rng = np.random.default_rng(3)
    sources = np.array(["kaggle"] * 300 + ["dermnet"] * 200 + ["sd198"] * 100)
    y = np.r_[rng.integers(0, N, 300), rng.choice([0, 1, N], 200, p=[0.05, 0.05, 0.9]), rng.choice([3, N], 100, p=[0.6, 0.4])]
    out = y == N
    shipped = crossval.sample_weights(y, sources, "source_sqrt")
    class_totals = [shipped[y == k].sum() for k in np.unique(y)]
    np.testing.assert_allclose(class_totals, class_totals[0])
    ratio = lambda w, m: w[m & out].sum() / w[m & ~out].sum()
    assert ratio(shipped, sources == "dermnet") > 2 * ratio(shipped, sources == "sd198")  # DermNet looks "other"
    w = crossval.sample_weights(y, sources, "deconfounded")
    np.testing.assert_allclose(ratio(w, sources == "dermnet"), ratio(w, sources == "sd198"))
    np.testing.assert_allclose(ratio(w, sources == "dermnet"), ratio(shipped, np.ones(len(y), bool)))
    for s in np.unique(sources):  # each source keeps its total weight
        np.testing.assert_allclose(w[sources == s].sum() / w.sum(), shipped[sources == s].sum() / shipped.sum())


def test_differential_temperature_rises_with_the_unknown_score():
    """training.metrics.fit_temperature_by_unknown: where photos with a high unknown score are over-confident (their
    true temperature rises with it), the fit finds that slope and, on the familiar and the unfamiliar photos apart,
    beats any one temperature, which is too sure of the one and too unsure of the other; where the temperature
    does not depend on the score, the slope stays near 0."""
    from skinscan.classifier import softmax
    from training import metrics

    rng = np.random.default_rng(11)

    def source(n, slope):  # labels drawn from softmax(logits / exp(slope * u)): calibrated at that temperature
        logits, u = rng.normal(0, 3.0, (n, N)), rng.uniform(0, 1, n)
        p = softmax(logits, np.exp(slope * u)[:, None])
        return logits, np.array([rng.choice(N, p=row) for row in p]), u

    def ece_by_half(sources, t0, slope):  # ECE of the familiar and the unfamiliar half of each source's photos, mean
        return np.mean([metrics.expected_calibration_error(softmax(lo[m], (t0 * np.exp(slope * u[m]))[:, None]), y[m])
                        for lo, y, u in sources for m in (u < 0.5, u >= 0.5)])

    rising = [source(600, 1.5), source(600, 1.5)]
    fit = metrics.fit_temperature_by_unknown(rising)
    assert 1.0 <= fit["slope"] <= 2.0 and 0.75 <= fit["t0"] <= 1.3, fit
    one = metrics.fit_temperature_per_source([(lo, y) for lo, y, _ in rising])
    assert ece_by_half(rising, fit["t0"], fit["slope"]) < ece_by_half(rising, one, 0.0) - 0.03
    flat = metrics.fit_temperature_by_unknown([source(600, 0.0), source(600, 0.0)])
    assert abs(flat["slope"]) <= 0.4 and 0.8 <= flat["t0"] <= 1.25, flat


def test_skin_gate_threshold_holds_for_the_smallest_kind_of_skin_photo():
    """training.crossval.fit_skin_gate: a small kind of skin photo that looks more like everyday photos (healthy feet
    in whole scenes) loses at most its share out of fold, where one quantile over all skin photos lets it lose many."""
    rng = np.random.default_rng(7)
    dim = 16

    def photos(n, centre):  # one view per photo, its own near-duplicate group
        return rng.normal(0, 1.0, (n, dim)) + centre

    toward = np.zeros(dim)
    toward[0] = 1.0
    disease, healthy, everyday = photos(900, 2.5 * toward), photos(100, 0.6 * toward), photos(300, -2.5 * toward)
    kinds = np.array(["disease"] * 900 + ["healthy"] * 100)
    gate, threshold, report = crossval.fit_skin_gate([np.vstack([disease, healthy])], kinds, np.arange(1000),
                                                     [everyday], np.arange(1000, 1300))
    assert report["out_of_fold_rejected"]["healthy"] <= 0.02 and report["out_of_fold_rejected"]["disease"] <= 0.01
    fresh_healthy = gate.predict_proba(crossval._unit(photos(2000, 0.6 * toward)))[:, 1]
    assert (fresh_healthy < threshold).mean() <= 0.05
    pooled = np.quantile(gate.predict_proba(crossval._unit(np.vstack([disease, healthy])))[:, 1], crossval.SKIN_REJECT_RATE)
    assert (fresh_healthy < pooled).mean() > 2 * (fresh_healthy < threshold).mean()


def test_near_duplicate_groups_keep_copies_together_and_distinct_photos_apart(data_root):
    """training.data.group_near_duplicates (the grouped split, one photo per group in every figure): a resized,
    re-encoded or slightly cropped copy joins its photo; distinct photos whose difference hashes are a few bits apart
    (low-contrast atlas photos: dhash alone chained 398 of them into one group) stay apart."""
    import io

    from PIL import Image

    from training import data

    paths = ["other_conditions/actinic_keratosis/295.jpg", "other_conditions/actinic_keratosis/528.jpg",
             "skin8/train/nail_fungus/dermnetnz_13.jpg", "other_conditions/acne_vulgaris/acne-face-1-9.jpg"]
    photos = [data.shrink(data.load_rgb(data_root / p), 400) for p in paths]
    first = photos[0]
    buf = io.BytesIO()
    Image.fromarray(first).resize((first.shape[1] * 2 // 3, first.shape[0] * 2 // 3)).save(buf, "JPEG", quality=50)
    h, w = first.shape[:2]
    copies = [data.decode_image(buf.getvalue()), first[h // 40: h - h // 40, w // 40: w - w // 40]]
    fingerprints = [data.fingerprint(im) for im in photos + copies]
    groups = data.group_near_duplicates(fingerprints)
    assert groups[4] == groups[5] == groups[0]
    assert len(set(groups[:4])) == 4
    assert len(set(data.group_near_duplicates(fingerprints[:4], max_difference=np.inf))) < 4  # the hash alone merges


def test_out_of_scope_by_condition_counts_the_disease_each_photo_was_given():
    """training.crossval.out_of_scope_by_condition: per condition folder, the photos given a disease and which one,
    from the same verdicts as the pipeline's decision (a rejected or unknown photo is given none)."""
    def row(disease=None, other=0.0):
        r = np.zeros(N + 1)
        if disease is not None:
            r[disease] = 8.0
        r[N] = other
        return r
    paths = ["other_conditions/psoriasis/a.jpg", "other_conditions/psoriasis/b.jpg", "other_conditions/psoriasis/c.jpg",
             "other_conditions/vitiligo/d.jpg", "other_conditions/vitiligo/e.jpg", "skin8/train/impetigo/f.jpg"]
    logits = np.array([row(4), row(4), row(None, 8.0), row(0), row(0), row(1)])
    feats = {"paths": np.array(paths), "kinds": np.array(["other"] * 5 + ["disease"]), "y": np.array([N] * 5 + [1]),
             "sources": np.array(["a"] * 6, dtype=object)}
    folds = {"logits": logits, "skin": np.array([True, True, True, True, False, True]), "fold": np.array(["a"] * 6, dtype=object)}
    logits[1, 0] = 8.0  # split between ringworm and cellulitis: uncertain
    rule = {"top_diseases": 2, "threshold": 0.5, "confident": 0.8}
    table = crossval.out_of_scope_by_condition(feats, folds, 1.0, rule, ["a"])
    assert list(table) == ["vitiligo", "psoriasis"]  # most often given a disease first
    assert table["psoriasis"] == {"n": 3, "given_a_disease": pytest.approx(1 / 3), "uncertain": pytest.approx(1 / 3),
                                  "novel": True, "as": {"ringworm": 1}}
    assert table["vitiligo"] == {"n": 2, "given_a_disease": pytest.approx(0.5), "uncertain": 0.0, "novel": True,
                                 "as": {"cellulitis": 1}}
    feats["sources"][1] = "b"  # a psoriasis photo from another source: its fold has seen the condition
    assert not crossval.out_of_scope_by_condition(feats, folds, 1.0, rule, ["a"])["psoriasis"]["novel"]


def test_by_infection_counts_named_useful_and_what_each_is_taken_for():
    """training.crossval.by_infection: per infection, the pipeline's verdicts on its held-out photos (named, useful,
    uncertain, none of the 8) and the infection the wrong ones were taken for; other sources' folds are left out."""
    def row(first, second=None, other=0.0):
        r = np.zeros(N + 1)
        r[first] = 8.0
        if second is not None:
            r[second] = 8.0  # split between two: uncertain
        r[N] = other
        return r
    chickenpox, impetigo, shingles = (config.CLASS_IDS.index(c) for c in ("chickenpox", "impetigo", "shingles"))
    logits = np.array([row(chickenpox), row(impetigo), row(impetigo, chickenpox), row(shingles, other=12.0),
                       row(impetigo), row(shingles), row(chickenpox)])
    feats = {"y": np.array([chickenpox] * 4 + [impetigo, shingles, N]), "kinds": np.array(["disease"] * 6 + ["other"])}
    folds = {"logits": logits, "skin": np.ones(7, bool), "fold": np.array(["a"] * 5 + ["b", "a"], dtype=object)}
    table = crossval.by_infection(feats, folds, 1.0, {"top_diseases": 2, "threshold": 0.5, "confident": 0.8}, ["a"])
    assert set(table) == {"chickenpox", "impetigo"}  # shingles only in fold b, the out-of-scope photo never
    assert table["chickenpox"] == {"n": 4, "top1": 0.25, "named": 0.25, "useful": 0.5, "uncertain": 0.25, "none_of_8": 0.25,
                                   "taken_for": {"impetigo": 2, "shingles": 1}}
    assert table["impetigo"]["named"] == table["impetigo"]["top1"] == 1.0 and not table["impetigo"]["taken_for"]


def test_a_fold_is_calibrated_only_on_the_infections_it_could_name():
    """training.crossval.nameable: the fold without a source had training photos of an infection in the other
    sources, or its photos of it are left out of the calibration fit (the Kaggle fold never saw chickenpox)."""
    n = crossval.MIN_FOLD_PHOTOS
    y = np.array([0] * n + [1] * (n - 1) + [0, 1, 6] * 2 + [N])
    sources = np.array(["b"] * (2 * n - 1) + ["kaggle"] * 6 + ["b"])
    kinds = np.array(["disease"] * (2 * n + 5) + ["other"])
    feats = {"y": y, "sources": sources, "kinds": kinds}
    held = sources == "kaggle"
    assert y[crossval.nameable(feats, "kaggle") & held].tolist() == [0, 0]  # impetigo (9 elsewhere), chickenpox (0): too few
    assert not crossval.nameable(feats, "kaggle")[-1]  # never an out-of-scope photo


def test_atlas_logo_is_recovered_from_its_photos_and_pasted_where_the_atlas_puts_it(tmp_path):
    """training.data.atlas_logo: photos sharing a semi-transparent white logo over varied backgrounds give back its
    alpha matte (and nothing elsewhere); paste_logo puts it bottom left at the photo's width, on any photo size."""
    import cv2

    from training import data

    rng = np.random.default_rng(0)
    truth = np.zeros((240, 320), np.float32)
    cv2.circle(truth, (50, 190), 22, 0.7, -1)
    paths = []
    for i in range(60):
        smooth = cv2.resize(rng.uniform(20, 160, (6, 8, 3)).astype(np.float32), (320, 240), interpolation=cv2.INTER_CUBIC)
        photo = np.clip(truth[..., None] * 255 + (1 - truth[..., None]) * smooth, 0, 255).astype(np.uint8)
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), photo[..., ::-1])
    alpha = data.atlas_logo(paths)
    assert alpha.shape == truth.shape
    assert abs(alpha[truth > 0].mean() - 0.7) < 0.08 and alpha[truth == 0].max() < 0.2
    assert data.atlas_logo(paths[:10]) is None  # too few photos to tell a logo from the photos
    pasted = data.paste_logo(np.zeros((120, 160, 3), np.uint8), alpha)  # half the size: the logo scales with the width
    assert pasted.shape == (120, 160, 3) and pasted[95, 25].min() > 140 and pasted[:60].max() == 0 and pasted[:, 80:].max() == 0


def test_folds_follow_the_sources_in_the_data():
    """training.crossval.fold_names: a fold per source with photos of the 8, one that holds out every source without
    any (new sources join without code changes); non-skin photos are never a fold's."""
    feats = {"sources": np.array(["a", "a", "b", "c", "new", "imagenet"]),
             "kinds": np.array(["disease", "other", "other", "healthy", "disease", "non_skin"]),
             "y": np.array([0, N, N, N, 3, -1])}
    assert crossval.fold_names(feats) == ["a", "new", crossval.OUT_OF_SCOPE_FOLD]
    assert crossval.held_out(feats, crossval.OUT_OF_SCOPE_FOLD).tolist() == [False, False, True, True, False, False]
    assert crossval.held_out(feats, "a").tolist() == [True, True, False, False, False, False]


def test_an_epoch_takes_every_photo_of_the_8_and_a_weighted_draw_of_the_rest():
    """training.train.epoch_photos: all photos of the 8 each epoch, ``other_per_epoch`` out-of-scope ones drawn by
    weight, and "other" keeps its total loss weight; a heavier source is drawn more often."""
    from training.train import epoch_photos

    y = np.r_[np.arange(100) % N, np.full(900, N)]
    w = np.r_[np.ones(100), np.full(300, 2.0), np.full(600, 0.5)]
    seen = np.zeros(len(y))
    for seed in range(40):
        order, weights = epoch_photos(y, w, 200, np.random.default_rng(seed))
        assert len(order) == len(set(order)) == 300 and set(range(100)) <= set(order)
        assert weights[order][y[order] == N].sum() == pytest.approx(w[y == N].sum())
        seen[order] += 1
    assert seen[100:400].mean() > 2 * seen[400:].mean()
    order, weights = epoch_photos(y, w, 0, np.random.default_rng(0))
    assert sorted(order) == list(range(len(y))) and weights is w


def test_a_plain_background_is_cut_away_for_training():
    """training.data.plain_background_crop: a hand on white (the healthy-hands collection) is cut to its middle, all
    skin; a close-up photo without a plain surround is left as it is."""
    from training import data

    canvas = np.full((180, 180, 3), 255, np.uint8)
    canvas[30:170, 60:120] = (200, 150, 130)  # the hand, skin coloured
    cut = data.plain_background_crop(canvas)
    assert cut.shape[0] < 180 and cut.shape[1] < 60 and (cut == (200, 150, 130)).all()
    close_up = np.random.default_rng(0).integers(60, 200, (120, 160, 3)).astype(np.uint8)
    assert data.plain_background_crop(close_up) is close_up
