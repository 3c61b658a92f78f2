"""Step 2 (skinscan.quality): warnings on degraded copies of real skin photos, unusable inputs, threshold loading.

Real photos: the first file (sorted by name) of the first three class folders (sorted) of skin8/train. The tests
that need them skip when the data folder is absent. Degradations here are written independently of the ones
in training/fit_quality.py, so they check the shipped thresholds rather than the fitting code against itself.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from skinscan import config, quality
from skinscan.decode import decode_image

REAL_PHOTOS = [  # sorted(class folders)[:3], sorted(files)[0] of each
    "athlete_foot/FU-athlete-foot (1).jpeg",
    "cellulitis/BA- cellulitis (1).jpeg",
    "chickenpox/100_VI-chickenpox (2).jpg",
]


def _real(relpath: str) -> np.ndarray:
    path = config.TRAIN_DIR / relpath
    if not config.TRAIN_DIR.is_dir():
        pytest.skip(f"real photos not available: {config.TRAIN_DIR} does not exist")
    if not path.is_file():
        pytest.skip(f"real photo not available: {path}")
    return decode_image(path.read_bytes())


def _codes(result: dict) -> set[str]:
    return {w["code"] for w in result["warnings"]}


# --- degradations (independent of training/fit_quality.py) --------------------------------------------------


def _tiny(rgb):
    return cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA)


def _gaussian_blur(rgb):
    return cv2.GaussianBlur(rgb, (0, 0), sigmaX=4.0 * min(rgb.shape[:2]) / 256)


def _motion_blur(rgb):
    n = max(3, int(20 * min(rgb.shape[:2]) / 256) | 1)
    kernel = np.zeros((n, n), np.float32)
    kernel[n // 2, :] = 1.0 / n  # horizontal shake
    return cv2.filter2D(rgb, -1, kernel)


def _dark(rgb):
    return (rgb.astype(np.float32) * 0.2).astype(np.uint8)


def _overexposed(rgb):
    return np.clip(rgb.astype(np.float32) * 1.8, 0, 255).astype(np.uint8)


def _low_contrast(rgb):
    x = rgb.astype(np.float32)
    return np.clip(x.mean() + (x - x.mean()) * 0.25, 0, 255).astype(np.uint8)


def _heavy_jpeg(rgb):
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 8])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


DEGRADATIONS = [
    ("too_small", _tiny),
    ("blurry", _gaussian_blur),
    ("too_dark", _dark),
    ("overexposed", _overexposed),
    ("low_contrast", _low_contrast),
    ("compressed", _heavy_jpeg),
]


# --- real photos --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("relpath", REAL_PHOTOS)
def test_clean_real_photo_has_no_blur_dark_or_overexposed_warning(relpath):
    result = quality.check_quality(_real(relpath))
    assert result["usable"] is True
    assert not _codes(result) & {"blurry", "too_dark", "overexposed"}, result


@pytest.mark.parametrize("relpath", REAL_PHOTOS)
@pytest.mark.parametrize("code,degrade", DEGRADATIONS, ids=[f"{c}-{f.__name__.strip('_')}" for c, f in DEGRADATIONS])
def test_each_warning_fires_on_a_degraded_real_photo(relpath, code, degrade):
    rgb = _real(relpath)
    result = quality.check_quality(degrade(rgb))
    assert code in _codes(result), (code, result["metrics"])
    assert result["usable"] is True  # degraded but still classifiable: warn, do not block
    assert result["ok"] is False
    for w in result["warnings"]:
        assert isinstance(w["message"], str) and len(w["message"]) > 20


@pytest.mark.parametrize("relpath", REAL_PHOTOS)
def test_defaults_also_catch_degradations(relpath):
    # the built-in defaults (no quality.json) must behave like fitted thresholds
    rgb = _real(relpath)
    t = dict(quality.DEFAULT_THRESHOLDS)
    assert not _codes(quality.check_quality(rgb, t)) & {"blurry", "too_dark", "overexposed"}
    for code, degrade in DEGRADATIONS:
        assert code in _codes(quality.check_quality(degrade(rgb), t)), code


def test_motion_blur_is_caught_on_most_real_photos():
    # Motion blur is the hardest case for a no-reference measure (the fit report gives ~92% detection at
    # 10-24 px): the chickenpox photo, blurred 17 px sideways, still scores just above the threshold because
    # the softest real training photos score that low too. Require 2 of the 3 photos, and a clear drop on all.
    caught = 0
    for relpath in REAL_PHOTOS:
        rgb = _real(relpath)
        before = quality.check_quality(rgb)["metrics"]["sharpness"]
        after = quality.check_quality(_motion_blur(rgb))
        assert after["metrics"]["sharpness"] < before / 5, relpath
        caught += "blurry" in _codes(after)
    assert caught >= 2


def test_real_photo_metrics_are_roughly_scale_independent():
    rgb = _real(REAL_PHOTOS[1])
    big = cv2.resize(rgb, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    small, large = quality.compute_metrics(rgb), quality.compute_metrics(big)
    assert large["width"] == 4 * small["width"]
    for key in ("mean_luminance", "contrast"):
        assert large[key] == pytest.approx(small[key], rel=0.1), key
    # enlarging softens a little but must not make a sharp photo "blurry"
    assert large["sharpness"] > quality.DEFAULT_THRESHOLDS["min_sharpness"]


# --- unusable -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,rgb",
    [
        ("8x8", np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)),
        ("flat grey", np.full((300, 400, 3), 128, np.uint8)),
        ("flat skin colour", np.full((300, 400, 3), (224, 172, 150), np.uint8)),
        ("black", np.zeros((300, 400, 3), np.uint8)),
        ("white", np.full((300, 400, 3), 255, np.uint8)),
        ("nearly black", np.clip(np.random.default_rng(1).normal(6, 3, (300, 400, 3)), 0, 255).astype(np.uint8)),
    ],
)
def test_unclassifiable_images_are_not_usable(name, rgb):
    result = quality.check_quality(rgb, quality.DEFAULT_THRESHOLDS)
    assert result["usable"] is False, (name, result["metrics"])
    assert result["ok"] is False
    assert "unusable" in _codes(result)


def test_synthetic_textured_image_is_usable():
    rng = np.random.default_rng(2)
    base = cv2.resize(rng.integers(40, 220, (30, 40, 3), dtype=np.uint8), (400, 300), interpolation=cv2.INTER_CUBIC)
    result = quality.check_quality(base, quality.DEFAULT_THRESHOLDS)
    assert result["usable"] is True


def test_result_shape():
    rgb = np.random.default_rng(3).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    result = quality.check_quality(rgb, quality.DEFAULT_THRESHOLDS)
    assert set(result) == {"ok", "usable", "warnings", "metrics"}
    assert result["ok"] == (not result["warnings"])
    m = result["metrics"]
    for key in ("width", "height", "sharpness", "dark_fraction", "bright_fraction", "mean_luminance", "contrast"):
        assert key in m
    assert (m["width"], m["height"]) == (320, 240)
    assert 0.0 <= m["dark_fraction"] <= 1.0 and 0.0 <= m["bright_fraction"] <= 1.0
    json.dumps(result)  # plain JSON types only


def test_rejects_non_image_arrays():
    with pytest.raises(ValueError):
        quality.check_quality(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError):
        quality.check_quality(np.zeros((10, 10, 4), np.uint8))


# --- thresholds -----------------------------------------------------------------------------------------------


def test_thresholds_fall_back_to_defaults_when_file_absent(tmp_path):
    assert not (tmp_path / quality.QUALITY_FILE).exists()
    assert quality.load_thresholds(tmp_path) == quality.DEFAULT_THRESHOLDS
    assert quality.load_thresholds(tmp_path / "no-such-model") == quality.DEFAULT_THRESHOLDS


def test_thresholds_file_overrides_defaults(tmp_path):
    (tmp_path / quality.QUALITY_FILE).write_text(json.dumps({"thresholds": {"min_side": 200}, "report": {}}))
    t = quality.load_thresholds(tmp_path)
    assert t["min_side"] == 200.0
    assert t["min_sharpness"] == quality.DEFAULT_THRESHOLDS["min_sharpness"]  # missing keys keep the default
    rgb = np.random.default_rng(4).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    assert "too_small" in _codes(quality.check_quality(rgb, t))
    assert "too_small" not in _codes(quality.check_quality(rgb, quality.DEFAULT_THRESHOLDS))


def test_corrupt_thresholds_file_fails_loudly(tmp_path):
    (tmp_path / quality.QUALITY_FILE).write_text("{not json")
    with pytest.raises(ValueError):
        quality.load_thresholds(tmp_path)


def test_shipped_thresholds_file_if_present_is_valid():
    path = config.MODEL_DIR / quality.QUALITY_FILE
    if not path.is_file():
        pytest.skip(f"{path} not produced yet (python -m training.fit_quality)")
    payload = json.loads(path.read_text())
    assert set(quality.DEFAULT_THRESHOLDS) <= set(payload["thresholds"])
    assert {"thresholds", "report", "n_fit", "n_report", "seed"} <= set(payload)
    quality.load_thresholds(config.MODEL_DIR)
