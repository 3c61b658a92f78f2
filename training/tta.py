"""Does test-time augmentation help? Compares plain vs flip-averaged logits on the validation split only.

    .venv/bin/python -m training.tta [--model DIR]      -> <model>/experiments.json ("tta")

The shipped pipeline uses TTA only if the validation split supports it (it costs 2-4x the compute).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from skinscan import config
from skinscan.classifier import KerasClassifier, softmax
from skinscan.preprocess import to_model_input
from training import data, metrics


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(config.MODEL_DIR))
    args = ap.parse_args(argv)
    model_dir = Path(args.model)
    split = json.loads((model_dir / "split.json").read_text())
    clf = KerasClassifier(model_dir)
    files = sorted(f for f, v in split["files"].items() if v["split"] == "val")
    y = np.array([clf.labels.index(f.split("/")[0]) for f in files])
    x = np.stack([to_model_input(data.load_rgb(config.TRAIN_DIR / f)) for f in files])
    views = {"plain": x, "hflip": x[:, :, ::-1], "vflip": x[:, ::-1], "rot90": np.rot90(x, 1, axes=(1, 2))}
    logits = {k: np.concatenate([clf.forward(v[i : i + 32])[0] for i in range(0, len(v), 32)]) for k, v in views.items()}
    variants = {"none": ["plain"], "hflip": ["plain", "hflip"], "flips+rot90": list(views)}
    out = {}
    for name, keys in variants.items():
        mean_logits = np.mean([logits[k] for k in keys], axis=0)
        p = softmax(mean_logits, clf.temperature)
        out[name] = {"val_accuracy": float((p.argmax(1) == y).mean()),
                     "val_macro_f1": metrics.classification_metrics(y, p, clf.labels)["macro_f1"],
                     "val_nll": float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12))), "forward_passes": len(keys)}
    path = model_dir / "experiments.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc["tta"] = {"split": "validation", "n": int(len(y)), "variants": out}
    path.write_text(json.dumps(doc, indent=2))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
