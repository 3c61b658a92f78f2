"""Train a classifier: EfficientNet-Lite0 fine-tuned into 9 classes (the 8 infections + "other").

    .venv/bin/python -m training.train [--out DIR] [--holdout-source SOURCE]      (make train / make crossval)

1. every photo of ../shared/data with its source (``training.features.catalogue``); a grouped split of all
   skin photos (near-duplicates never straddle it), stratified by source and class; ``--holdout-source``
   leaves one whole source out (for ``training.crossval``);
2. phase 1: the head on cached frozen-backbone embeddings (``training.features``, clean + augmented views);
3. phase 2: MBConv blocks 8-15 and the head fine-tuned (BatchNorm frozen) with crop/flip/colour augmentation
   plus photo conditions (darker skin tone, colour cast, low resolution, blur, JPEG, text overlays), loss weights
   that balance classes and sources; the average of the weights at the end of the later epochs kept (``config``)
   (``--average-from 0``: the epoch with the best validation top-1 of the 8);
4. export model.keras (image -> logits over the 8 + "other", embedding), labels and split to DIR.

Calibration, gates and the figures are fitted afterwards by ``training.calibrate`` from the leave-one-source-out
folds, never from the test split.
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
from training import crossval, data

HEAD_LABELS = crossval.HEAD_LABELS


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(config.MODEL_DIR))
    ap.add_argument("--holdout-source", default="", help="leave this source out entirely (a fold of crossval.fold_names: a "
                    "source with photos of the 8, or out_of_scope for every source without any)")
    ap.add_argument("--seed", type=int, default=config.SEED)
    ap.add_argument("--backbone", default=config.BACKBONE, choices=sorted(backbone.VARIANTS),
                    help="ImageNet EfficientNet-Lite variant (its input size; needs `training.features --backbone` first)")
    ap.add_argument("--features", default=None, help="embeddings file of training.features (default: the cache)")
    ap.add_argument("--weighting", default=config.HEAD_WEIGHTING, choices=["class", "source", "source_sqrt", "deconfounded"])
    ap.add_argument("--epochs", type=int, default=config.EPOCHS)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--train-on-val", action=argparse.BooleanOptionalAction, default=config.TRAIN_ON_VALIDATION,
                    help="fit on the validation split too (the recipe picks nothing on it: weights are averaged over "
                         "the last epochs); its per-epoch figures are then a fit check, not a measurement")
    ap.add_argument("--average-from", type=int, default=config.AVERAGE_FROM_EPOCH,
                    help="keep the average of the weights at the end of this epoch and every later one (all epochs run); "
                         "0: keep the epoch with the best validation top-1 of the 8")
    ap.add_argument("--unfreeze-from", type=int, default=config.UNFREEZE_FROM_BLOCK)
    ap.add_argument("--label-smoothing", type=float, default=config.LABEL_SMOOTHING,
                    help="share of each training target spread evenly over the 9 head classes (0: none)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--other-per-epoch", type=int, default=config.OTHER_PER_EPOCH,
                    help="fine-tuning epochs take all training photos of the 8 and this many out-of-scope ones, drawn anew "
                         "each epoch in proportion to their loss weights (0: all of them every epoch)")
    ap.add_argument("--other-patches", type=float, default=config.OTHER_PATCHES,
                    help="share of the 'other' photos' training views that are small patches (training.data.skin_patch)")
    ap.add_argument("--muted-redness", action=argparse.BooleanOptionalAction, default=config.MUTED_REDNESS,
                    help="darker-skin augmentation also mutes redness and browns the tone (training.data.darker_skin_tone)")
    ap.add_argument("--colour-constancy", action=argparse.BooleanOptionalAction, default=config.COLOUR_CONSTANCY,
                    help="shades-of-grey colour constancy in the model's preprocessing (recorded in labels.json)")
    ap.add_argument("--mixstyle-after", type=int, nargs="*", default=list(config.MIXSTYLE_AFTER),
                    help="MixStyle (feature-statistics mixing, training only) after these backbone blocks; none: off")
    ap.add_argument("--mixup", type=float, default=config.MIXUP,
                    help="mixup (Zhang et al. 2018): each batch blended with itself in another order, images, targets and "
                         "loss weights alike, by a Beta(a, a) share; a = this value, 0: off")
    ap.add_argument("--source-adversary", type=float, default=config.SOURCE_ADVERSARY,
                    help="strength of a gradient-reversed head that guesses each photo's source within its class "
                         "(domain-adversarial training, training only); 0: off")
    ap.add_argument("--camera", nargs="*", default=list(config.CAMERA_CONDITIONS), choices=["zoom_out", "under_exposed"],
                    help="phone-camera augmentation (training.data.camera_conditions): the spot smaller in the frame, "
                         "indoor exposure; none: off")
    ap.add_argument("--atlas-logo", type=float, default=config.ATLAS_LOGO_RATE,
                    help="share of the other sources' training views given the atlas's logo (config.ATLAS_LOGO_RATE)")
    ap.add_argument("--crop-min-area", type=float, default=config.CROP_MIN_AREA,
                    help="fine-tuning views: random crops of at least this share of the photo")
    return ap.parse_args(argv)


def training_view(rgb, label: int, other_patches: float, muted_redness: bool, rng, camera=(),
                  crop_min_area: float = config.CROP_MIN_AREA, logo=None, logo_rate: float = 0.0):
    """One augmented training view: the atlas's logo at ``logo_rate`` (a photo of another source, when ``logo`` is
    given), crop/flip/colour, photo conditions (and phone-camera ones); for "other", sometimes a small patch first."""
    if logo is not None and rng.random() < logo_rate:
        rgb = data.paste_logo(rgb, logo)
    if other_patches > 0 and label == len(config.CLASS_IDS) and rng.random() < other_patches:
        rgb = data.skin_patch(rgb, rng)
    view = data.photo_conditions(data.augment(rgb, rng, crop_min_area), rng, muted_redness)
    return data.camera_conditions(view, rng, camera)  # none named: the view unchanged, no random draw


def epoch_photos(y, weights, other_per_epoch: int, rng):
    """(order of the training photos one epoch visits, their loss weights): every photo of the 8 and, with
    ``other_per_epoch``, that many out-of-scope ones drawn in proportion to their weights and weighted alike so that
    "other" keeps its total weight (the out-of-scope photos outnumber the 8 four to one: this keeps an epoch short)."""
    out = np.where(y == len(config.CLASS_IDS))[0]
    if not other_per_epoch or len(out) <= other_per_epoch:
        return rng.permutation(len(y)), weights
    drawn = rng.choice(out, other_per_epoch, replace=False, p=weights[out] / weights[out].sum())
    weights = weights.copy()
    weights[drawn] = weights[out].sum() / other_per_epoch
    return rng.permutation(np.r_[np.where(y < len(config.CLASS_IDS))[0], drawn]), weights


def fit_photos(feats: dict, seed: int, holdout_source: str, train_on_val: bool):
    """(grouped split masks, photos fine-tuned on, validation photos one per near-duplicate group): the skin photos of
    the training split (and the validation split with ``train_on_val``), never of ``holdout_source``."""
    masks = crossval.grouped_masks(feats, seed)
    keep = (feats["y"] >= 0) & ~crossval.held_out(feats, holdout_source)
    fit_on = masks["train"] | masks["val"] if train_on_val else masks["train"]
    return masks, fit_on & keep, crossval.one_per_group(feats["groups"], masks["val"] & keep)


def phase1_head(feats: dict, train: np.ndarray, weighting: str):
    """The logistic head on the cached frozen embeddings of the training photos (all their cached views) -> (head,
    [kernel, bias] of the 9-way Dense layer it initialises; a class without photos gets a bias of -30)."""
    views = [k for k in feats if k in ("clean", "flip") or k.startswith("aug")]
    y, sources = feats["y"], feats["sources"]
    head = crossval.fit_head([feats[v][train] for v in views], y[train], sources[train], weighting, config.HEAD_C)
    w = np.zeros((feats["clean"].shape[1], len(HEAD_LABELS)), np.float32)
    b = np.full(len(HEAD_LABELS), -30.0, np.float32)
    w[:, head.classes_], b[head.classes_] = head.coef_.T, head.intercept_
    return head, [w, b]


def build_model(n_classes: int, head_weights, seed: int, variant: str = config.BACKBONE, mixstyle_after: tuple = ()):
    """EfficientNet-Lite backbone with ImageNet weights -> (logits, embedding); the head initialised from phase 1."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    base = backbone.build(include_top=False, input_size=backbone.VARIANTS[variant]["input_size"], variant=variant,
                          mixstyle_after=mixstyle_after)
    imagenet = backbone.imagenet_model(variant=variant)
    for layer in base.layers:
        if layer.weights:
            layer.set_weights(imagenet.get_layer(layer.name).get_weights())
    embedding = base.output
    dense = layers.Dense(n_classes, name="logits")
    logits = dense(layers.Dropout(0.2, name="head_dropout")(layers.UnitNormalization(name="unit")(embedding)))
    model = keras.Model(base.input, [logits, embedding], name=config.MODEL_NAME)
    dense.set_weights(head_weights)
    return base, model


def source_adversary(model, strength: float, n_sources: int):
    """A head on the model's unit embedding that guesses the photo source through a gradient reversal layer
    (Ganin et al. 2016): it learns to tell sources apart, and the backbone learns the opposite. Training only."""
    import keras
    import tensorflow as tf

    class GradientReversal(keras.layers.Layer):
        def call(self, x):
            @tf.custom_gradient
            def reverse(v):
                return tf.identity(v), lambda dy: -strength * dy
            return reverse(x)

    unit = model.get_layer("unit").output
    return keras.layers.Dense(n_sources, name="source_logits")(GradientReversal(name="gradient_reversal")(unit))


def adversary_weights(y, sources) -> np.ndarray:
    """Loss weights of the source guess: within each class, every source weighs the same; a class only one source
    has weighs nothing (there the source is the class, and hiding it would hide the class)."""
    w = np.zeros(len(y))
    for k in np.unique(y):
        in_k = y == k
        present = np.unique(sources[in_k])
        if len(present) < 2:
            continue
        for s in present:
            m = in_k & (sources == s)
            w[m] = 1.0 / (len(present) * m.sum())
    return w * (w > 0).sum() / w.sum() if w.any() else w


def main(argv=None):
    args = parse_args(argv)
    if args.train_on_val and not args.average_from:
        raise SystemExit("keeping the best validation epoch needs a validation split outside training: add --no-train-on-val")
    if args.mixup and args.source_adversary:
        raise SystemExit("--mixup and --source-adversary do not combine (the source guess needs one source per photo)")
    import keras

    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/4] data, grouped split{', holding out ' + args.holdout_source if args.holdout_source else ''}")
    feats = crossval.load_features(args.backbone, args.colour_constancy, path=args.features)
    size = backbone.VARIANTS[args.backbone]["input_size"]
    y, sources = feats["y"], feats["sources"]
    masks, train, val = fit_photos(feats, args.seed, args.holdout_source, args.train_on_val)
    print(f"  train {train.sum()} photos, validation {val.sum()} (one per near-duplicate group"
          f"{', in training: a fit check' if args.train_on_val else ''})")

    print("[2/4] phase 1: head on cached frozen embeddings")
    head, (w, b) = phase1_head(feats, train, args.weighting)
    val_logits = crossval.head_logits(head, feats["clean"][val])
    print(f"  phase 1 validation top-1 (9 classes): {(val_logits.argmax(1) == y[val]).mean():.3f}")

    print(f"[3/4] phase 2: fine-tune blocks {args.unfreeze_from}.. + head, BatchNorm frozen")
    root = config.DATA_ROOT
    paths = feats["paths"]
    idx_train, idx_val = np.where(train)[0], np.where(val)[0]
    images = {i: data.load_training_photo(root / paths[i]) for i in tqdm(np.r_[idx_train, idx_val], desc="decode", unit="img")}
    atlas = idx_train[sources[idx_train] == config.ATLAS_SOURCE]
    logo = data.atlas_logo([root / paths[i] for i in atlas]) if args.atlas_logo and len(atlas) else None
    print(f"  atlas logo on {args.atlas_logo:.0%} of the other sources' views" if logo is not None else "  no atlas logo")
    base, model = build_model(len(HEAD_LABELS), [w, b], args.seed, args.backbone, tuple(args.mixstyle_after))
    for layer in base.layers:
        name = layer.name
        block = int(name[5:].split("_")[0]) if name.startswith("block") else None
        top = (block is not None and block >= args.unfreeze_from) or name.startswith("head_")
        layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)
    train_model = keras.Model(model.input, model.output[0])  # predicts; with an adversary, fit_model trains
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=args.label_smoothing)
    one_hot = np.eye(len(HEAD_LABELS), dtype=np.float32)
    weights = class_weights = crossval.sample_weights(y[idx_train], sources[idx_train], args.weighting)
    if args.source_adversary:
        source_names = sorted(set(sources[idx_train]))
        source_idx = np.array([source_names.index(s) for s in sources[idx_train]])
        adv_weights = adversary_weights(y[idx_train], sources[idx_train])
        fit_model = keras.Model(model.input, [model.output[0], source_adversary(model, args.source_adversary, len(source_names))])
        fit_model.compile(optimizer=keras.optimizers.Adam(1e-4),
                          loss=[loss, keras.losses.SparseCategoricalCrossentropy(from_logits=True)])

        def fit_batch(xb, pick):
            return fit_model.train_on_batch(xb, [one_hot[y[idx_train[pick]]], source_idx[pick]],
                                            sample_weight=[weights[pick], adv_weights[pick]])[1]  # the class loss
    else:
        train_model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss)

        def fit_batch(xb, pick):
            targets, sw = one_hot[y[idx_train[pick]]], weights[pick]
            if args.mixup:  # photos of different sources and classes blended: no single look or source decides
                lam, other = rng.beta(args.mixup, args.mixup), rng.permutation(len(pick))
                xb, targets, sw = (lam * v + (1 - lam) * v[other] for v in (xb, targets, sw))
            return train_model.train_on_batch(xb, targets, sample_weight=sw)
    cc = args.colour_constancy
    x_val = np.stack([to_model_input(images[i], size, colour_constancy=cc) for i in idx_val])
    y_val = y[idx_val]
    best, best_score, bad, history = train_model.get_weights(), -np.inf, 0, []
    averaged, n_averaged = None, 0
    average_from = min(args.average_from, args.epochs)  # a short run averages its last epoch at least
    for epoch in range(args.epochs):
        te = time.time()
        order, weights = epoch_photos(y[idx_train], class_weights, args.other_per_epoch, rng)  # fit_batch reads these
        losses = []
        bar = tqdm(range(0, len(order), args.batch), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch")
        for s in bar:
            pick = order[s : s + args.batch]
            views = [training_view(images[idx_train[j]], y[idx_train[j]], args.other_patches, args.muted_redness, rng,
                                   args.camera, args.crop_min_area,
                                   None if sources[idx_train[j]] == config.ATLAS_SOURCE else logo, args.atlas_logo)
                     for j in pick]
            xb = np.stack([to_model_input(v, size, colour_constancy=cc) for v in views])
            losses.append(fit_batch(xb, pick))
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses))})
        if average_from:  # weight averaging over the later epochs (Izmailov et al. 2018), no early stop; validation at the end
            print(f"  epoch {epoch + 1}: train loss {np.mean(losses):.3f} ({time.time() - te:.0f} s, total "
                  f"{(time.time() - t0) / 60:.1f} min)", flush=True)
            if epoch + 1 >= average_from:
                now = train_model.get_weights()
                averaged = now if averaged is None else [a + w for a, w in zip(averaged, now)]
                n_averaged += 1
            continue
        logits = train_model.predict(x_val, batch_size=args.batch, verbose=0)
        val_loss = float(-np.mean(np.log(softmax(logits)[np.arange(len(y_val)), y_val] + 1e-12)))
        in_scope = y_val < len(config.CLASS_IDS)
        val_top1 = float((logits[in_scope, : len(config.CLASS_IDS)].argmax(1) == y_val[in_scope]).mean())
        history[-1].update({"val_loss": val_loss, "val_top1_9": float((logits.argmax(1) == y_val).mean()),
                            "val_top1_8_in_scope": val_top1})
        print(f"  epoch {epoch + 1}: val loss {val_loss:.3f}, top-1 of the 8 {val_top1:.3f} ({time.time() - te:.0f} s, "
              f"total {(time.time() - t0) / 60:.1f} min)", flush=True)
        # kept: the epoch that names the infection best on validation (the 9-way loss rises early, as the
        # "other" photos of the atlas look like its photos of the 8), ties broken by the loss
        score = val_top1 - 0.01 * val_loss
        if score > best_score + 1e-4:
            best_score, best, bad = score, train_model.get_weights(), 0
        else:
            bad += 1
            if bad >= args.patience:
                print("  early stop: validation top-1 has not improved")
                break
    train_model.set_weights([a / n_averaged for a in averaged] if n_averaged else best)
    if n_averaged:
        logits = train_model.predict(x_val, batch_size=args.batch, verbose=0)
        in_scope = y_val < len(config.CLASS_IDS)
        val_top1 = float((logits[in_scope, : len(config.CLASS_IDS)].argmax(1) == y_val[in_scope]).mean())
        history.append({"averaged_epochs": n_averaged, "val_top1_8_in_scope": val_top1})
        print(f"  average of the last {n_averaged} epochs: validation top-1 of the 8 {val_top1:.3f}")

    print(f"[4/4] export to {out}")
    if args.mixstyle_after:  # the served model has no MixStyle layers (identity at inference): same weights
        trained, (_, model) = model.get_weights(), build_model(len(HEAD_LABELS), [w, b], args.seed, args.backbone)
        model.set_weights(trained)
    model.save(out / "model.keras")
    version = datetime.now(timezone.utc).strftime("%Y%m%d.%H%M")
    (out / "labels.json").write_text(json.dumps({"labels": HEAD_LABELS, "model_name": config.MODEL_NAME, "version": version,
                                                 "input_size": size, "colour_constancy": cc}, indent=2))
    (out / "calibration.json").write_text(json.dumps({"temperature": 1.0, "fitted_on": "not yet: training.calibrate "
                                                      "fits it on the leave-one-source-out folds"}, indent=2))
    split_of = np.where(masks["train"], "train", np.where(masks["val"], "val", np.where(masks["test"], "test", "")))
    rel = [Path(p) for p in paths]
    split_doc = {
        "seed": args.seed, "hash": "dhash64 + 16x16 thumbnail", "max_distance": data.HASH_MAX_DISTANCE,
        "max_thumbnail_difference": data.THUMB_MAX_DIFFERENCE, "holdout_source": args.holdout_source,
        "files": {p.relative_to("skin8/train").as_posix(): {"split": s, "group": int(g), "source": src}
                  for p, s, g, k, src in zip(rel, split_of, feats["groups"], feats["kinds"], sources) if k == "disease"},
        "other_files": {p.relative_to("other_conditions").as_posix(): {"split": s, "group": int(g), "source": src}
                        for p, s, g, k, src in zip(rel, split_of, feats["groups"], feats["kinds"], sources)
                        if k in ("other", "healthy")},
    }
    (out / "split.json").write_text(json.dumps(split_doc, indent=1))
    (out / "training.json").write_text(json.dumps({
        "backbone": f"EfficientNet-{args.backbone.title()} (ImageNet), blocks {args.unfreeze_from}-{len(backbone.block_specs(args.backbone)) - 1} fine-tuned",
        "input_size": size, "colour_constancy": cc, "other_patches": args.other_patches,
        "muted_redness": args.muted_redness, "mixstyle_after": args.mixstyle_after, "average_from_epoch": args.average_from,
        "label_smoothing": args.label_smoothing, "source_adversary": args.source_adversary, "mixup": args.mixup,
        "camera_conditions": args.camera, "crop_min_area": args.crop_min_area,
        "atlas_logo": args.atlas_logo if logo is not None else 0.0,
        "weighting": args.weighting, "holdout_source": args.holdout_source, "train_on_val": args.train_on_val, "seed": args.seed,
        "train_photos": int(train.sum()), "val_photos": int(val.sum()), "history": history,
        "train_photos_by_source": {s: int(((sources == s) & train).sum()) for s in sorted(set(sources[y >= 0]))},
        "other_per_epoch": args.other_per_epoch, "epochs": args.epochs,
        "train_minutes": (time.time() - t0) / 60}, indent=2))
    print(f"done in {(time.time() - t0) / 60:.1f} min")
    return model


if __name__ == "__main__":
    main()
