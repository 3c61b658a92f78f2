"""Weight soup: one model whose weights are the mean of models fine-tuned from the same start (Wortsman et al. 2022).

    .venv/bin/python -m training.soup --out cache/folds-soup cache/folds cache/folds-e16-seed2

Each argument is a directory of fold models (``training.train --holdout-source S --out DIR/S``); for every fold that
all of them have, DIR_OUT/S gets the averaged ``model.keras`` and the first member's other files (labels, split), so
``training.compare_folds`` and ``bench.robustness --folds`` measure it like any fold model. One model pass per photo,
unlike a logit ensemble. Measured and not kept (experiments.json "weight soup").
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from training import crossval


def soup(members: list[Path], out: Path) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    models = [keras.models.load_model(m / "model.keras", compile=False) for m in members]
    weights = [m.get_weights() for m in models]
    models[0].set_weights([sum(ws) / len(ws) for ws in zip(*weights)])
    out.mkdir(parents=True, exist_ok=True)
    for f in members[0].iterdir():  # heldout.npz holds the first member's logits: not copied
        if f.is_file() and f.name not in ("model.keras", "heldout.npz"):
            shutil.copy(f, out / f.name)
    models[0].save(out / "model.keras")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("members", nargs="+", help="fold-model directories of the same backbone, trained from the same start")
    args = ap.parse_args(argv)
    for fold in crossval.FOLDS:
        dirs = [Path(m) / fold for m in args.members]
        if all((d / "model.keras").exists() for d in dirs):
            soup(dirs, Path(args.out) / fold)
            print(f"{fold}: mean of {len(dirs)} models -> {Path(args.out) / fold}")


if __name__ == "__main__":
    main()
