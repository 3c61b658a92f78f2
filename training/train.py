"""Train the shipped classifier: EfficientNet-Lite0 transfer learning on ../shared/data/skin8/train.

    .venv/bin/python -m training.train [--data DIR] [--out MODEL_DIR]      (make train)

1. list the class-per-folder data, group near-duplicates (dHash), split train/val/test by group;
2. phase 1: frozen ImageNet backbone, a new softmax head trained on cached (augmented) embeddings;
3. phase 2: unfreeze the top MBConv blocks and fine-tune at a lower learning rate with augmentation, class
   weights and outlier exposure (other_conditions photos of fitted conditions pushed towards a uniform
   prediction), early stopping on validation loss, best weights kept;
4. temperature scaling on validation; test-split metrics, plots and the export to models/<name>/.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from tqdm import tqdm

from skinscan import backbone, config
from skinscan.classifier import softmax
from skinscan.preprocess import to_model_input
from training import data, metrics


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("SKINSCAN_TRAIN_DIR", str(config.TRAIN_DIR)))
    ap.add_argument("--other", default=str(config.OTHER_CONDITIONS_DIR), help="out-of-scope conditions ('' = none)")
    ap.add_argument("--out", default=str(config.MODEL_DIR))
    ap.add_argument("--seed", type=int, default=config.SEED)
    ap.add_argument("--head-views", type=int, default=3, help="augmented views per image for phase 1")
    ap.add_argument("--head-epochs", type=int, default=80)
    ap.add_argument("--finetune-epochs", type=int, default=14)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--atlas-weight", type=float, default=config.ATLAS_PHOTO_WEIGHT,
                    help="loss weight of the DermNet atlas training photos (dermnetnz_*), the minority source")
    ap.add_argument("--unfreeze-from", type=int, default=config.UNFREEZE_FROM_BLOCK, help="first MBConv block fine-tuned")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--limit-per-class", type=int, default=0, help="smoke tests: use only N images per class")
    return ap.parse_args(argv)


def load_split(args):
    """Decode, hash, group and split the in-scope data; returns a dict of lists plus the report."""
    items = data.list_images(Path(args.data), config.CLASS_IDS)
    if args.limit_per_class:  # the first N files of each class
        items = [it for c in config.CLASS_IDS for it in [x for x in items if x[1] == c][: args.limit_per_class]]
    labels = [c for c in config.CLASS_IDS if any(cls == c for _, cls in items)]
    images = [data.load_rgb(p) for p, _ in tqdm(items, desc="decode", unit="img")]
    groups = data.group_near_duplicates([data.dhash(im) for im in images])
    y = [c for _, c in items]
    splits = data.grouped_split(groups, y, config.SPLIT_FRACTIONS, args.seed)
    report = data.split_report(splits, groups, y)
    for name, r in report.items():
        print(f"  {name:5s}: {r['images']:4d} images in {r['groups']:3d} near-duplicate groups  {r['per_class']}")
    return {
        "paths": [str(p) for p, _ in items], "images": [data.shrink(im) for im in images], "full": images,
        "y": np.array([labels.index(c) for c in y]), "groups": groups, "splits": splits,
        "labels": labels, "report": report,
    }


def load_outliers(args, seed):
    """other_conditions photos of the conditions not held out (outlier exposure), grouped 80/20 train/val."""
    if not args.other or not Path(args.other).is_dir():
        return {"paths": [], "images": [], "splits": []}
    items = [(p, c) for p, c in data.list_images(Path(args.other)) if c not in config.UNKNOWN_HOLDOUT_CONDITIONS]
    if args.limit_per_class:
        items = items[:: max(1, len(items) // args.limit_per_class)]
    images = [data.shrink(data.load_rgb(p)) for p, _ in tqdm(items, desc="decode outliers", unit="img")]
    groups = data.group_near_duplicates([data.dhash(im) for im in images])
    splits = data.grouped_split(groups, [c for _, c in items], (0.8, 0.2, 0.0), seed)
    return {"paths": [str(p) for p, _ in items], "images": images, "splits": splits}


def batches(arrays, size):
    for i in range(0, len(arrays), size):
        yield np.stack(arrays[i : i + size])


def embed(model, images, batch, desc, rng=None):
    """Model outputs for a list of uint8 images (augmented when rng is given)."""
    outs = []
    for chunk in tqdm(list(batches(list(range(len(images))), batch)), desc=desc, unit="batch"):
        x = np.stack([to_model_input(data.augment(images[i], rng) if rng is not None else images[i]) for i in chunk])
        outs.append(model.predict_on_batch(x))
    return np.concatenate(outs) if outs else np.zeros((0,))


def build_classifier(num_classes, seed):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    base = backbone.build(include_top=False, input_size=config.IMAGE_SIZE)
    imagenet = backbone.imagenet_model()
    for layer in base.layers:
        if layer.weights:
            layer.set_weights(imagenet.get_layer(layer.name).get_weights())
    head = keras.Sequential([layers.Dropout(0.3), layers.Dense(num_classes, name="logits")], name="head")
    embedding = base.output
    logits = head(embedding)
    return base, head, keras.Model(base.input, [logits, embedding], name=config.MODEL_NAME)


def class_weights(y, n):
    counts = np.bincount(y, minlength=n).astype(float)
    w = counts.sum() / (n * np.maximum(counts, 1))
    return w / w.mean()


def soft_targets(y, n, smoothing=0.05):
    t = np.full((len(y), n), smoothing / n, np.float32)
    t[np.arange(len(y)), y] += 1 - smoothing
    return t


def main(argv=None):
    args = parse_args(argv)
    import keras

    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/5] data from {args.data}")
    ds = load_split(args)
    oe = load_outliers(args, args.seed)
    labels, n_cls = ds["labels"], len(ds["labels"])
    idx = {s: [i for i, v in enumerate(ds["splits"]) if v == s] for s in ("train", "val", "test")}
    tr_imgs = [ds["images"][i] for i in idx["train"]]
    y_tr, y_va, y_te = (ds["y"][idx[s]] for s in ("train", "val", "test"))
    atlas = {s: np.array([data.is_atlas_photo(ds["paths"][i]) for i in idx[s]]) for s in idx}
    oe_tr = [im for im, s in zip(oe["images"], oe["splits"]) if s == "train"]
    cw = class_weights(y_tr, n_cls)
    sample_w = cw[y_tr] * np.where(atlas["train"], args.atlas_weight, 1.0)

    print("[2/5] phase 1: new head on the frozen ImageNet backbone")
    base, head, model = build_classifier(n_cls, args.seed)
    feats = [embed(base, tr_imgs, args.batch, f"embed view {v + 1}/{args.head_views}", rng) for v in range(args.head_views)]
    x_head = np.concatenate(feats)
    t_head = np.tile(soft_targets(y_tr, n_cls), (args.head_views, 1))
    w_head = np.tile(sample_w, args.head_views)
    if oe_tr:
        f_oe = embed(base, oe_tr, args.batch, "embed outliers", rng)
        x_head = np.concatenate([x_head, f_oe])
        t_head = np.concatenate([t_head, np.full((len(f_oe), n_cls), 1 / n_cls, np.float32)])
        w_head = np.concatenate([w_head, np.full(len(f_oe), config.OE_WEIGHT)])
    val_full = [to_model_input(ds["full"][i]) for i in idx["val"]]
    x_val_emb = np.concatenate([base.predict_on_batch(b) for b in batches(val_full, args.batch)])
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    stop = keras.callbacks.EarlyStopping(patience=8, restore_best_weights=True)
    head.fit(x_head, t_head, sample_weight=w_head, epochs=args.head_epochs, batch_size=64, verbose=2,
             validation_data=(x_val_emb, soft_targets(y_va, n_cls, 0.0)), callbacks=[stop])
    phase1_val_acc = float((head.predict(x_val_emb, verbose=0).argmax(1) == y_va).mean())
    print(f"  phase 1 validation top-1: {phase1_val_acc:.3f}")

    print(f"[3/5] phase 2: fine-tune blocks {args.unfreeze_from}.. + head conv, BatchNorm frozen")
    for layer in base.layers:
        name = layer.name
        block = int(name[5:].split("_")[0]) if name.startswith("block") else None
        top = (block is not None and block >= args.unfreeze_from) or name.startswith("head_")
        layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)
    train_model = keras.Model(model.input, model.output[0])
    train_model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    x_val = np.stack(val_full)
    t_val = soft_targets(y_va, n_cls, 0.0)
    best, best_loss, bad, history = None, np.inf, 0, []
    n_oe = min(len(oe_tr), len(tr_imgs) // 3)
    for epoch in range(args.finetune_epochs):
        te = time.time()
        pick = rng.choice(len(oe_tr), n_oe, replace=False) if n_oe else []
        imgs = tr_imgs + [oe_tr[j] for j in pick]
        targets = np.concatenate([soft_targets(y_tr, n_cls), np.full((n_oe, n_cls), 1 / n_cls, np.float32)])
        weights = np.concatenate([sample_w, np.full(n_oe, config.OE_WEIGHT)])
        order = rng.permutation(len(imgs))
        bar = tqdm(range(0, len(order), args.batch), desc=f"epoch {epoch + 1}/{args.finetune_epochs}", unit="batch")
        losses = []
        for s in bar:
            b = order[s : s + args.batch]
            xb = np.stack([to_model_input(data.augment(imgs[i], rng)) for i in b])
            losses.append(train_model.train_on_batch(xb, targets[b], sample_weight=weights[b]))
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")
        val_logits = train_model.predict(x_val, batch_size=args.batch, verbose=0)
        val_loss = float(-np.mean(np.log(softmax(val_logits)[np.arange(len(y_va)), y_va] + 1e-12)))
        val_acc = float((val_logits.argmax(1) == y_va).mean())
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val_loss, "val_acc": val_acc})
        elapsed = time.time() - t0
        print(f"  epoch {epoch + 1}: val loss {val_loss:.3f} top-1 {val_acc:.3f} ({time.time() - te:.0f} s, "
              f"ETA <= {(time.time() - te) * (args.finetune_epochs - epoch - 1) / 60:.1f} min, total {elapsed / 60:.1f} min)")
        if val_loss < best_loss - 1e-4:
            best_loss, best, bad = val_loss, [w.copy() for w in train_model.get_weights()], 0
        else:
            bad += 1
            if bad >= args.patience:
                print("  early stop: validation loss has not improved")
                break
    train_model.set_weights(best)

    print("[4/5] temperature scaling on validation, metrics on test")
    def logits_of(split):
        xs = [to_model_input(ds["full"][i]) for i in idx[split]]
        return np.concatenate([model.predict_on_batch(b)[0] for b in batches(xs, args.batch)])

    val_logits, test_logits = logits_of("val"), logits_of("test")
    temperature = metrics.fit_temperature(val_logits, y_va)
    test_raw = softmax(test_logits)
    test_cal = softmax(test_logits, temperature)
    m = metrics.classification_metrics(y_te, test_cal, labels)
    m["ece_before_scaling"] = metrics.expected_calibration_error(test_raw, y_te)
    m["ece_after_scaling"] = m["ece"]
    m["validation"] = {"accuracy": float((val_logits.argmax(1) == y_va).mean()), "phase1_accuracy": phase1_val_acc,
                       "atlas_accuracy": float((val_logits.argmax(1) == y_va)[atlas["val"]].mean()) if atlas["val"].any() else None,
                       "atlas_n": int(atlas["val"].sum())}
    print(f"  T={temperature:.3f}  test top-1 {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  "
          f"ECE {m['ece_before_scaling']:.3f} -> {m['ece_after_scaling']:.3f}")

    print(f"[5/5] export to {out}")
    model.save(out / "model.keras")
    version = datetime.now(timezone.utc).strftime("%Y%m%d.%H%M")
    (out / "labels.json").write_text(json.dumps({"labels": labels, "model_name": config.MODEL_NAME, "version": version}, indent=2))
    (out / "calibration.json").write_text(json.dumps({"temperature": temperature, "fitted_on": "validation split"}, indent=2))
    split_doc = {
        "seed": args.seed, "hash": "dhash64", "max_distance": data.HASH_MAX_DISTANCE, "report": ds["report"],
        "files": {Path(p).relative_to(Path(args.data)).as_posix(): {"split": s, "group": int(g)}
                  for p, s, g in zip(ds["paths"], ds["splits"], ds["groups"])},
        "outlier_exposure": {Path(p).relative_to(Path(args.other)).as_posix(): s for p, s in zip(oe["paths"], oe["splits"])},
        "unknown_holdout_conditions": config.UNKNOWN_HOLDOUT_CONDITIONS,
    }
    (out / "split.json").write_text(json.dumps(split_doc, indent=1))
    metrics.plot_confusion(m["confusion_matrix"]["matrix"], labels, out / "confusion_matrix.png", "Test split (grouped)")
    metrics.plot_reliability({"before scaling": (test_raw, y_te), f"T={temperature:.2f}": (test_cal, y_te)},
                             out / "reliability.png")
    m.update({
        "model": {"name": config.MODEL_NAME, "version": version, "backbone": "EfficientNet-Lite0 (ImageNet)",
                  "input_size": config.IMAGE_SIZE, "temperature": temperature, "unfreeze_from_block": args.unfreeze_from,
                  "atlas_weight": args.atlas_weight},
        "split": ds["report"], "history": history, "train_minutes": (time.time() - t0) / 60,
        "outlier_exposure_images": len(oe_tr),
    })
    (out / "metrics.json").write_text(json.dumps(m, indent=2))
    print(f"done in {(time.time() - t0) / 60:.1f} min")
    return {"metrics": m, "model": model}


if __name__ == "__main__":
    main()
