"""Weight soups of fine-tuned fold models (one model pass per photo, unlike a logit ensemble of the same models).

    .venv/bin/python -m training.soup --out cache/folds-soup cache/folds cache/folds-e16-seed2
    .venv/bin/python -m training.soup --out cache/folds-wise --wise 0.5 --seed 1234 cache/folds

Each argument is a directory of fold models (``training.train --holdout-source S --out DIR/S``); for every fold that
all of them have, OUT/S gets the new ``model.keras`` and the first member's other files (labels, split), so
``training.compare_folds`` and ``bench.robustness --folds`` measure it like any fold model.
- Several members: the mean of their weights (Wortsman et al. 2022, "model soups"; members fine-tuned from the same
  start: other seeds, or other augmentation).
- ``--wise A`` with one member: A x the fine-tuned weights + (1 - A) x its own start, the ImageNet backbone with the
  phase-1 head rebuilt as ``training.train`` fits it (WiSE-FT, Wortsman et al. 2022; the photos, loss weights and
  seed of the member's training.json, ``--seed`` where it has none).
Measured and not kept (experiments.json "weight soup", "WiSE-FT").
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from skinscan import config
from training import crossval


def starting_point(fold_dir: Path, feats: dict, seed: int):
    """The model ``training.train --holdout-source S`` started fine-tuning from: its photos, loss weights and seed as
    its training.json records them (``seed`` where it does not: runs before 2026-11-29 did not record it)."""
    from training.train import HEAD_LABELS, build_model, fit_photos, phase1_head

    run = json.loads((fold_dir / "training.json").read_text())
    seed = run.get("seed", seed)
    _, train, _ = fit_photos(feats, seed, fold_dir.name, run.get("train_on_val", False))
    _, head_weights = phase1_head(feats, train, run.get("weighting", config.HEAD_WEIGHTING))
    return build_model(len(HEAD_LABELS), head_weights, seed)[1]


def soup(members: list[Path], out: Path, start=None) -> None:
    """``out``/model.keras: the mean of the ``members``' weights, or with ``start`` (a share A and the starting model)
    A x the one member's weights + (1 - A) x the start's."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    models = [keras.models.load_model(m / "model.keras", compile=False) for m in members]
    weights = [m.get_weights() for m in models]
    if start is None:
        mixed = [sum(ws) / len(ws) for ws in zip(*weights)]
    else:
        share, start_model = start
        mixed = [share * w + (1 - share) * s for w, s in zip(weights[0], start_model.get_weights())]
    models[0].set_weights(mixed)
    out.mkdir(parents=True, exist_ok=True)
    for f in members[0].iterdir():  # heldout.npz holds the first member's logits: not copied
        if f.is_file() and f.name not in ("model.keras", "heldout.npz"):
            shutil.copy(f, out / f.name)
    models[0].save(out / "model.keras")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--wise", type=float, default=None, help="share of the fine-tuned weights against the start (one member)")
    ap.add_argument("--seed", type=int, default=config.SEED,
                    help="with --wise: the seed the member was trained with, where its training.json does not say")
    ap.add_argument("--features", default=None, help="with --wise: embeddings file of training.features (default: the cache)")
    ap.add_argument("members", nargs="+", help="fold-model directories of one backbone, fine-tuned from the same start")
    args = ap.parse_args(argv)
    if args.wise is not None and len(args.members) != 1:
        raise SystemExit("--wise interpolates one fold-model directory with its start")
    feats = crossval.load_features(config.BACKBONE, path=args.features) if args.wise is not None else None
    for fold in sorted({d.name for m in args.members for d in Path(m).iterdir() if (d / "model.keras").exists()}):
        dirs = [Path(m) / fold for m in args.members]
        if all((d / "model.keras").exists() for d in dirs):
            start = None if feats is None else (args.wise, starting_point(dirs[0], feats, args.seed))
            soup(dirs, Path(args.out) / fold, start)
            print(f"{fold}: {'WiSE-FT' if args.wise is not None else f'mean of {len(dirs)} models'} -> {Path(args.out) / fold}")


if __name__ == "__main__":
    main()
