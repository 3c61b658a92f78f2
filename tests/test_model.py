"""The model: a genuine ImageNet port, a training smoke run that round-trips, and the evaluate command."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data

from skinscan import backbone, config
from skinscan.preprocess import to_model_input
from skinscan.torch_pickle import load_state_dict

# ImageNet-1k indices (the standard sorted-WordNet-id order) of a few classes sampled in ../shared/data/non_skin
IMAGENET_INDEX = {"great_white_shark": 2, "hammerhead": 4, "cock": 7, "ostrich": 9, "junco": 13, "robin": 15,
                  "bald_eagle": 22, "basketball": 430, "sports_car": 817, "Granny_Smith": 948, "strawberry": 949,
                  "lemon": 951, "pineapple": 953, "banana": 954, "pizza": 963, "espresso": 967}
ESPRESSO, CUP = 967, 968
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def imagenet():
    return backbone.imagenet_model()


def top5(model, rgb):
    return np.argsort(model.predict(to_model_input(rgb)[None], verbose=0)[0])[::-1][:5]


def test_checkpoint_is_read_with_numpy_only():
    sd = load_state_dict(backbone.checkpoint_path())
    assert len(sd) == 296
    assert backbone.count_params(sd) == 4_694_024


def test_checkpoint_reader_never_imports_torch():
    """In a fresh interpreter where any attempt to import torch fails loudly (installed or not)."""
    script = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch was imported')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from skinscan import backbone\n"
        "from skinscan.torch_pickle import load_state_dict\n"
        "sd = load_state_dict(backbone.checkpoint_path())\n"
        "print(len(sd))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=config.ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "296"


def test_port_predicts_espresso_and_cat(imagenet):
    assert top5(imagenet, skimage.data.coffee())[0] in (ESPRESSO, CUP)
    assert top5(imagenet, skimage.data.chelsea())[0] in CATS


def test_port_on_imagenet_photos(imagenet, data_root):
    from training.data import load_rgb

    hits = []
    for name, index in IMAGENET_INDEX.items():
        path = next((data_root / "non_skin").glob(f"n*_{name}.JPEG"), None)
        if path is not None:
            hits.append(index in top5(imagenet, load_rgb(path)))
    assert len(hits) >= 10
    assert np.mean(hits) >= 0.8, hits


def test_lite2_port_predicts_cat():
    """The Lite2 variant (tried for the backbone, see experiments.json) is a genuine port too."""
    lite2 = backbone.imagenet_model(variant="lite2")
    size = backbone.VARIANTS["lite2"]["input_size"]
    top = np.argsort(lite2.predict(to_model_input(skimage.data.chelsea(), size)[None], verbose=0)[0])[::-1]
    assert top[0] in CATS


def test_mixstyle_mixes_feature_statistics_in_training_only():
    """MixStyle (a training augmentation in feature space): at inference the identity; in training, on the calls it
    fires (probability 0.5), each photo's per-channel mean and spread move towards another photo's of the batch."""
    layer = backbone.mixstyle_layer("mixstyle")
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(8, 7, 7, 4)) * np.arange(1, 9)[:, None, None, None] + 10 * np.arange(8)[:, None, None, None]).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    outs = [np.asarray(layer(x, training=True)) for _ in range(20)]
    fired = [o for o in outs if not np.allclose(o, x)]
    assert 3 <= len(fired) <= 17  # p = 0.5 over 20 calls
    for o in fired:  # a mixed photo keeps its pattern (per-channel correlation 1) but takes on another's statistics
        assert np.abs(o.mean(axis=(1, 2)) - x.mean(axis=(1, 2))).max() > 1.0
        flat_o, flat_x = o.reshape(8, -1, 4), x.reshape(8, -1, 4)
        corr = [np.corrcoef(flat_o[i, :, c], flat_x[i, :, c])[0, 1] for i in range(8) for c in range(4)]
        assert min(corr) > 0.999


def test_zoom_out_keeps_the_photo_whole_and_smaller_in_the_frame():
    from training import data

    rgb = skimage.data.chelsea()
    for seed in range(6):
        out = data.zoom_out(rgb, np.random.default_rng(seed))
        h, w = rgb.shape[:2]
        assert h < out.shape[0] <= 2 * h and w < out.shape[1] <= 2 * w
        y0, x0 = np.unravel_index(cv2.matchTemplate(out, rgb, cv2.TM_SQDIFF).argmin(), (out.shape[0] - h + 1, out.shape[1] - w + 1))
        np.testing.assert_array_equal(out[y0 : y0 + h, x0 : x0 + w], rgb)  # the photo itself, pixel for pixel, on a surround


def test_training_smoke_round_trip(tmp_path, data_root):
    """A tiny `make crossval` + `make train`: embeddings, a fold model that never sees DermNet, the model, its
    calibration from that fold, gates and model card; the export reloads with identical predictions."""
    from training import calibrate, features, soup, train

    feats = tmp_path / "features.npz"
    features.main(["--limit", "4", "--views", "1", "--out", str(feats)])
    out, folds = tmp_path / "model", tmp_path / "folds"
    fold = train.main(["--features", str(feats), "--epochs", "1", "--holdout-source", "dermnet", "--out", str(folds / "dermnet"),
                       "--source-adversary", "0.3", "--camera", "zoom_out", "under_exposed", "--crop-min-area", "0.2"])
    assert not [layer.name for layer in fold.layers if "source" in layer.name or "reversal" in layer.name]  # training-only
    model = train.main(["--features", str(feats), "--epochs", "1", "--out", str(out), "--mixstyle-after", "2", "4", "7", "--mixup", "0.2",
                        "--atlas-logo", "0.5"])
    assert not [layer.name for layer in model.layers if "mixstyle" in layer.name]  # training-only: not exported
    seen = {d: json.loads((d / "training.json").read_text())["train_photos_by_source"] for d in (folds / "dermnet", out)}
    assert seen[folds / "dermnet"]["dermnet"] == 0 < seen[out]["dermnet"] and seen[out]["kaggle"] > 0
    fold_doc = json.loads((folds / "dermnet" / "training.json").read_text())
    assert fold_doc["camera_conditions"] == ["zoom_out", "under_exposed"] and fold_doc["crop_min_area"] == 0.2
    assert json.loads((out / "training.json").read_text())["atlas_logo"] == 0.0  # a few atlas photos: no logo to tell
    import keras

    fold_weights = fold.get_weights()  # weight soups (training.soup): a soup of one model twice is that model
    soup.main(["--out", str(tmp_path / "soup"), str(folds), str(folds)])
    for a, b in zip(keras.models.load_model(tmp_path / "soup" / "dermnet" / "model.keras").get_weights(), fold_weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # WiSE-FT at 0: the fine-tuning start, rebuilt: equal to the fold model where fine-tuning changes nothing
    soup.main(["--out", str(tmp_path / "start"), "--wise", "0", "--features", str(feats), str(folds)])
    start = keras.models.load_model(tmp_path / "start" / "dermnet" / "model.keras").get_weights()
    same = [np.array_equal(a, b) for a, b in zip(start, fold_weights)]
    assert 0 < sum(not s for s in same) < len(same) / 4  # the fine-tuned blocks 8-15 and the head, not the rest
    split = json.loads((out / "split.json").read_text())
    fit_splits = ("train", "val") if config.TRAIN_ON_VALIDATION else ("train",)  # the test split never
    n_fit = sum(f["split"] in fit_splits for part in ("files", "other_files") for f in split[part].values())
    assert json.loads((out / "training.json").read_text())["train_photos"] == n_fit
    if config.AVERAGE_FROM_EPOCH:  # a 1-epoch run keeps that epoch's weights, not the untrained start
        assert json.loads((out / "training.json").read_text())["history"][-1]["averaged_epochs"] == 1
    shutil.copy(config.MODEL_DIR / "quality.json", out / "quality.json")
    calibrate.main(["--model", str(out), "--folds", str(folds), "--features", str(feats)])
    for name in ("model.keras", "labels.json", "calibration.json", "metrics.json", "split.json", "gates.json",
                 "gates.npz", "crossval.json", "MODEL_CARD.md", "confusion_matrix.png", "reliability.png"):
        assert (out / name).exists(), name
    assert json.loads((out / "labels.json").read_text())["labels"] == config.CLASS_IDS + [config.OTHER_LABEL]
    cv = json.loads((out / "crossval.json").read_text())
    assert cv["folds"] == ["dermnet"] and "dermnet" in cv["table"] and cv["temperature"] > 0
    gates = json.loads((out / "gates.json").read_text())["unknown"]
    assert gates == {k: cv["rule"][k] for k in ("method", "top_diseases", "threshold", "confident")}
    assert cv["held_out_sources"] == ["dermnet"] and cv["rule"]["met"]["none_of_8_worst"] <= config.TIER_MAX_NONE_OF_8
    assert "never seen (leave-one-source-out)" in (out / "MODEL_CARD.md").read_text()
    x = np.stack([to_model_input(skimage.data.coffee()), to_model_input(skimage.data.chelsea())])
    logits_before, emb_before = (np.asarray(a) for a in model.predict(x, verbose=0))
    logits_after, emb_after = (np.asarray(a) for a in keras.models.load_model(out / "model.keras").predict(x, verbose=0))
    np.testing.assert_allclose(logits_after, logits_before, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(emb_after, emb_before, rtol=1e-4, atol=1e-4)
    split = json.loads((out / "split.json").read_text())
    groups = {}
    for info in [*split["files"].values(), *split["other_files"].values()]:
        groups.setdefault(info["group"], set()).add(info["split"])
    assert all(len(s) == 1 for s in groups.values()), "a near-duplicate group spans two splits"


# Tolerance below metrics.json for a subset of the test split: 3 photos per class are a small sample (at the
# measured ~0.97 top-1, 24 photos have a standard error of about 0.035); 0.15 is over 4 standard errors.
SUBSET_TOLERANCE = 0.15


def test_evaluate_command_on_test_split_photos(tmp_path, data_root, model_dir):
    """`training.evaluate` on test-split photos (never trained on, per split.json): its figures agree with
    metrics.json within SUBSET_TOLERANCE."""
    labels = json.loads((model_dir / "labels.json").read_text())
    split = json.loads((model_dir / "split.json").read_text())
    metrics = json.loads((model_dir / "metrics.json").read_text())
    test_files = sorted(f for f, v in split["files"].items() if v["split"] == "test")
    folder = tmp_path / "test_subset"
    copied = 0
    for cls in config.CLASS_IDS:
        (folder / cls).mkdir(parents=True)
        for rel in [f for f in test_files if f.split("/")[0] == cls][:3]:
            assert split["files"][rel]["split"] == "test"
            shutil.copy(data_root / "skin8" / "train" / rel, folder / cls / rel.split("/", 1)[1])
            copied += 1
    (folder / "not_a_class").mkdir()
    out = tmp_path / "eval.json"
    subprocess.run([sys.executable, "-m", "training.evaluate", "--data", str(folder), "--out", str(out)],
                   check=True, cwd=config.ROOT, timeout=300)
    r = json.loads(out.read_text())
    assert r["n"] == copied == 3 * len(config.CLASS_IDS)
    assert r["accuracy"] >= metrics["accuracy"] - SUBSET_TOLERANCE, (r["accuracy"], metrics["accuracy"])
    assert r["macro_f1"] >= metrics["macro_f1"] - SUBSET_TOLERANCE, (r["macro_f1"], metrics["macro_f1"])
    assert 0.0 <= r["ece"] <= 1.0
    for cls in config.CLASS_IDS:
        assert r["per_class"][cls]["support"] == 3
        assert set(r["per_class"][cls]) == {"precision", "recall", "f1", "support"}
    assert r["confusion_matrix"]["labels"][:len(config.CLASS_IDS)] == config.CLASS_IDS
    assert set(r["confusion_matrix"]["labels"]) <= set(labels) | set(config.CLASS_IDS)
    assert np.asarray(r["confusion_matrix"]["matrix"]).sum() == copied
    assert r["skipped_folders"] == ["not_a_class"]


def test_readme_figures_are_the_shipped_models():
    """The README's per-source table is the shipped model's crossval.json / metrics.json / gates.json, as
    training.model_card writes it: a retrained model whose README was not rewritten fails here."""
    from training import model_card

    text = (config.ROOT / "README.md").read_text()
    block = text[text.index(model_card.README_START): text.index(model_card.README_END) + len(model_card.README_END)]
    assert block == model_card.readme_figures(config.MODEL_DIR)
