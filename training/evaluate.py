"""Evaluate the shipped model on any class-per-folder directory (folder names = class ids, any subset).

    .venv/bin/python -m training.evaluate --data DIR --out FILE.json [--model MODEL_DIR]

Runs the serving pipeline in-process (same decode, preprocessing, model and gates). Classification figures
use the calibrated differential over the 8 classes; the gate outcomes (verdict counts) are reported beside them.
Folders whose name is not a class id are reported as skipped.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from skinscan import config
from skinscan.decode import InputError
from skinscan.pipeline import Pipeline, Prepared
from training import data, metrics


def evaluate(data_dir: Path, model_dir: Path, batch: int = 32) -> dict:
    pipeline = Pipeline(model_dir)
    labels = pipeline.labels
    folders = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
    items = data.list_images(data_dir, labels)
    y, probs, verdicts, errors = [], [], Counter(), Counter()
    for i in tqdm(range(0, len(items), batch), desc="evaluate", unit="batch"):
        chunk = items[i : i + batch]
        prepared = pipeline.prepare_all([p.read_bytes() for p, _ in chunk])
        ok = [(p, c) for p, (_, c) in zip(prepared, chunk) if isinstance(p, Prepared)]
        for p in prepared:
            if isinstance(p, InputError):
                errors[p.code] += 1
        if not ok:
            continue
        logits, emb = pipeline.forward(np.stack([p.model_input for p, _ in ok]))
        for (p, c), lo, em in zip(ok, logits, emb):
            verdicts[pipeline.finish(p, lo, em)["verdict"]] += 1
            y.append(labels.index(c))
        probs.append(pipeline.disease_probabilities(logits))
    probs_arr = np.concatenate(probs) if probs else np.zeros((0, len(labels)))
    result = metrics.classification_metrics(np.array(y, dtype=int), probs_arr, labels)
    result.update({
        "data": str(data_dir),
        "model": pipeline.model_info,
        "classes_evaluated": sorted({labels[i] for i in y}, key=labels.index),
        "skipped_folders": [f for f in folders if f not in labels],
        "verdicts": dict(verdicts),
        "input_errors": dict(errors),
    })
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="class-per-folder directory")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--model", default=str(config.MODEL_DIR))
    args = ap.parse_args(argv)
    result = evaluate(Path(args.data), Path(args.model))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"n={result['n']} accuracy={result['accuracy']:.3f} macro_f1={result['macro_f1']:.3f} "
          f"ece={result['ece']:.3f} verdicts={result['verdicts']} -> {args.out}")
    return result


if __name__ == "__main__":
    main()
