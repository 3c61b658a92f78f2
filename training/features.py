"""Every photo in ../shared/data with its source, and cached backbone embeddings of it (clean, flipped, augmented).

    .venv/bin/python -m training.features --backbone lite2 [--views 2] [--colour-constancy]

The leave-one-source-out evaluation (``training.crossval``) and the head training (``training.train``) read
the cache (``cache/features-<backbone>[-cc].npz``, ignored by git) instead of running the backbone again.
"""
from __future__ import annotations

import argparse
import csv
import os
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from tqdm import tqdm

from skinscan import backbone, config
from skinscan.preprocess import to_model_input
from training import data

CACHE_DIR = config.ROOT / "cache"
SOURCES = {  # MANIFEST.csv source_repo -> short source name (the file-name prefix, where the files have one)
    "karthikch2630/Skin-Disease-Detector": "kaggle",
    "MinhKemm/DermNet_Dataset": "dermnet",
    "codecodecode333/skin-disease-search-SD-198-": "sd198",
    "zhouyuChina/nasnet-densnet-fusion-onychomycosis": "nailweb",
    "EliSchwartz/imagenet-sample-images": "imagenet",
    "mahsan2/Monkeypox-dataset-2022": "mpoxweb",
    "tcobian831/skin-dataset-classification-tp": "tineaweb",
    "ishachadalavada/AJL_Team11": "f17k",
    "khupatel/insectbite-classifier": "bites",
    "koen-sikkema/Wound-Classification-DL": "azh",
    "bregydoc/torioux-hands": "hands11k",
}
HEALTHY_PREFIX = "healthy_"  # every other_conditions/ label that starts with it is healthy skin (README of the data)


def source_name(source_repo: str) -> str:
    """Short name of a photo source: the known ones by name, any other by its repository name (sources keep being added)."""
    return SOURCES.get(source_repo) or "".join(ch for ch in source_repo.split("/")[-1].lower() if ch.isalnum())


def catalogue(root: Path = config.DATA_ROOT) -> list[dict]:
    """One record per photo: path, label (class id, condition or non_skin), kind, source.

    kind: ``disease`` (one of the 8), ``other`` (another condition), ``healthy`` (healthy skin or nails),
    ``non_skin`` (everyday photos).
    """
    out = []
    with open(Path(root) / "MANIFEST.csv", newline="") as f:
        for row in csv.DictReader(f):
            top = row["path"].split("/")[0]
            label = row["label"]
            kind = {"skin8": "disease", "non_skin": "non_skin"}.get(top, "healthy" if label.startswith(HEALTHY_PREFIX) else "other")
            out.append({"path": row["path"], "label": label, "kind": kind, "source": source_name(row["source_repo"])})
    return sorted(out, key=lambda r: r["path"])


def first_per_label(records: list[dict], limit: int) -> list[dict]:
    """The first ``limit`` photos of each label from each source (a small set that still has every source)."""
    taken, kept = Counter(), []
    for r in records:
        taken[r["label"], r["source"]] += 1
        if taken[r["label"], r["source"]] <= limit:
            kept.append(r)
    return kept


def frozen_backbone(variant: str):
    """The ImageNet EfficientNet-Lite without its classifier: image -> 1280-d embedding."""
    import keras

    imagenet = backbone.imagenet_model(variant=variant)
    return keras.Model(imagenet.input, imagenet.get_layer("avg_pool").output)


def embed_images(model, images, size: int, transform=None, batch: int = 32, colour_constancy: bool = False) -> np.ndarray:
    outs = []
    for i in range(0, len(images), batch):
        chunk = [transform(im) if transform else im for im in images[i : i + batch]]
        outs.append(model.predict_on_batch(np.stack([to_model_input(im, size, colour_constancy) for im in chunk])))
    return np.concatenate(outs).astype(np.float32)


def cache_path(name: str, colour_constancy: bool = False) -> Path:
    return CACHE_DIR / f"features-{name}{'-cc' if colour_constancy else ''}.npz"


def build(variant: str, views: int, colour_constancy: bool, seed: int = config.SEED, root: Path = config.DATA_ROOT,
          limit: int = 0, path: Path | None = None):
    """Embed every photo (or the first ``limit`` of each label, for smoke tests) into ``path`` (default: the cache)."""
    records = catalogue(root)
    if limit:
        records = first_per_label(records, limit)
    t0 = time.time()
    images = [data.load_training_photo(root / r["path"], 400) for r in tqdm(records, desc="decode", unit="img")]
    groups = data.group_near_duplicates([data.fingerprint(im) for im in images])
    model = frozen_backbone(variant)
    size = backbone.VARIANTS[variant]["input_size"]
    rng = np.random.default_rng(seed)
    cc = {"colour_constancy": colour_constancy}
    out = {"clean": embed_images(model, images, size, **cc), "flip": embed_images(model, images, size, lambda im: im[:, ::-1], **cc)}
    for v in range(views):
        out[f"aug{v}"] = embed_images(model, images, size, lambda im: data.photo_conditions(data.augment(im, rng), rng), **cc)
        print(f"  view {v + 1}/{views} done ({(time.time() - t0) / 60:.1f} min)")
    path = Path(path or cache_path(variant, colour_constancy))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, paths=np.array([r["path"] for r in records]), groups=np.array(groups), **out)
    print(f"{len(records)} photos x {2 + views} views -> {path} in {(time.time() - t0) / 60:.1f} min")
    return path


def load(name: str, colour_constancy: bool = False, path: Path | None = None) -> dict:
    """The cached arrays plus the catalogue records in the same order."""
    with np.load(path or cache_path(name, colour_constancy)) as z:
        arrays = {k: z[k] for k in z.files}
    by_path = {r["path"]: r for r in catalogue()}
    arrays["records"] = [by_path[p] for p in arrays["paths"]]
    return arrays


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default=config.BACKBONE, choices=sorted(backbone.VARIANTS))
    ap.add_argument("--views", type=int, default=2, help="augmented views per photo (photo-condition augmentation)")
    ap.add_argument("--colour-constancy", action="store_true", help="shades-of-grey colour constancy before the backbone")
    ap.add_argument("--limit", type=int, default=0, help="smoke tests: only the first N photos of each label")
    ap.add_argument("--out", default=None, help="where to write (default: the cache)")
    args = ap.parse_args(argv)
    return build(args.backbone, args.views, args.colour_constancy, limit=args.limit, path=args.out)


if __name__ == "__main__":
    main()
