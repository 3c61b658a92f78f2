"""The model: a genuine ImageNet port, a training smoke run that round-trips, and the evaluate command."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

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
    assert "torch" not in sys.modules


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


def test_training_smoke_round_trip(tmp_path, data_root):
    """A tiny end-to-end training run: the pipeline runs, the export reloads with identical predictions."""
    from skinscan.classifier import KerasClassifier
    from training import train

    out = tmp_path / "model"
    result = train.main(["--limit-per-class", "6", "--out", str(out), "--head-epochs", "2", "--finetune-epochs", "1",
                         "--head-views", "1", "--other", ""])
    for name in ("model.keras", "labels.json", "calibration.json", "metrics.json", "split.json",
                 "confusion_matrix.png", "reliability.png"):
        assert (out / name).exists(), name
    x = np.stack([to_model_input(skimage.data.coffee()), to_model_input(skimage.data.chelsea())])
    logits_before, emb_before = (np.asarray(a) for a in result["model"].predict(x, verbose=0))
    logits_after, emb_after = KerasClassifier(out).forward(x)
    np.testing.assert_allclose(logits_after, logits_before, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(emb_after, emb_before, rtol=1e-4, atol=1e-4)
    split = json.loads((out / "split.json").read_text())
    groups = {}
    for info in split["files"].values():
        groups.setdefault(info["group"], set()).add(info["split"])
    assert all(len(s) == 1 for s in groups.values()), "a near-duplicate group spans two splits"


def test_evaluate_command_on_unseen_folder(tmp_path, data_root, model_dir):
    tiny = tmp_path / "tiny"
    for cls in ("shingles", "nail_fungus"):
        (tiny / cls).mkdir(parents=True)
        for src in sorted((data_root / "skin8" / "train" / cls).iterdir())[:2]:
            shutil.copy(src, tiny / cls / src.name)
    (tiny / "not_a_class").mkdir()
    out = tmp_path / "eval.json"
    subprocess.run([sys.executable, "-m", "training.evaluate", "--data", str(tiny), "--out", str(out)],
                   check=True, cwd=config.ROOT, timeout=300)
    r = json.loads(out.read_text())
    assert r["n"] == 4
    for key in ("accuracy", "macro_f1", "ece"):
        assert 0.0 <= r[key] <= 1.0
    assert r["per_class"]["shingles"]["support"] == 2 and r["per_class"]["cellulitis"]["support"] == 0
    assert set(r["per_class"]["shingles"]) == {"precision", "recall", "f1", "support"}
    assert r["confusion_matrix"]["labels"] == config.CLASS_IDS
    assert np.asarray(r["confusion_matrix"]["matrix"]).sum() == 4
    assert r["skipped_folders"] == ["not_a_class"]
