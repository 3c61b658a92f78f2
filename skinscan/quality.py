"""Step 2: cheap image-quality checks on a decoded photo (HxWx3 uint8 RGB from skinscan.decode).

``check_quality(rgb)`` returns::

    {"ok": bool,          # no warnings at all
     "usable": bool,      # False only when the photo cannot be classified at all (tiny, flat, black, white)
     "warnings": [{"code": ..., "message": ...}, ...],
     "metrics": {...}}

Warnings never block a prediction; they tell the person how to take a better photo. Only ``usable == False``
means "do not classify".

Scale independence: every measure except width/height (and ``blockiness``, which must see the JPEG 8x8 grid at
the resolution the file was encoded at) is taken on the grayscale luminance shrunk so its short side is
``ANALYSIS_SIDE`` px, so the same scene photographed at 600 px or at 4000 px gets the same numbers. Smaller
photos are measured as they are: enlarging them would add blur of its own (their problem is size, and
``too_small`` says so).

``sharpness`` is a variance of the Laplacian made robust in two ways: the Laplacian is split into its four
directional second derivatives (horizontal, vertical, two diagonals) and the *weakest* direction is kept, so
motion blur (sharp across, smeared along) is caught; and it is divided by the luminance variance, so a dim or
hazy photo is not also called blurry. The classic undirected, unnormalised value is reported as
``laplacian_variance``.

``overexposed`` uses ``clipped_fraction`` (any channel at or above CLIP_LEVEL) rather than the luminance-based
``bright_fraction``: on blown-out skin the red channel clips first, while the luminance can stay below 245, so
it catches overexposure at a lower false-warning cost. Neither can tell a white studio background from
blown-out skin; such photos are the main source of false ``overexposed`` warnings.

Thresholds are fitted on real skin photos by ``python -m training.fit_quality`` and stored in
``<model_dir>/quality.json`` under ``"thresholds"``; without that file the built-in ``DEFAULT_THRESHOLDS`` apply.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from skinscan import config

QUALITY_FILE = "quality.json"
ANALYSIS_SIDE = 256  # short side, px, of the luminance image the scale-free measures are taken on
SHARPNESS_SCALE = 1000.0  # sharpness = 1000 * weakest directional 2nd-derivative variance / luminance variance
DARK_LEVEL = 25  # luminance (0-255) below which a pixel counts as "dark"
BRIGHT_LEVEL = 245  # luminance above which a pixel counts as "bright" (bright_fraction)
CLIP_LEVEL = 250  # a pixel with any channel at or above this is clipped (clipped_fraction)
BLOCK_MAX_SIDE = 1024  # blockiness is measured on at most this many px per side (a grid-aligned centre crop)

# Warning thresholds (a warning fires when the metric is on the bad side) and the fixed "unusable" limits.
# The warning thresholds are overwritten by the fitted values in quality.json; these defaults are the values
# `python -m training.fit_quality` fitted (300 skin8 photos, seed 0) so a missing file behaves like a fresh fit.
DEFAULT_THRESHOLDS: dict[str, float] = {
    # warnings
    "min_side": 110.9,  # too_small: shorter side (px) below this
    "min_sharpness": 2.12,  # blurry: sharpness (normalised, weakest-direction variance of the Laplacian) below this
    "min_mean_luminance": 77.23,  # too_dark: mean luminance below this
    "max_clipped_fraction": 0.2485,  # overexposed: more than this fraction of pixels with a channel >= CLIP_LEVEL
    "min_contrast": 67.5,  # low_contrast: p95 - p5 luminance range below this
    "max_blockiness": 1.953,  # compressed: JPEG 8x8 block-edge steps relative to the other steps above this
    # unusable (fixed, not fitted): the photo cannot be classified at all
    "unusable_min_side": 32.0,
    "unusable_min_contrast": 4.0,  # p99 - p1 luminance range: essentially one flat colour
    "unusable_dark_fraction": 0.98,  # almost entirely black
    "unusable_bright_fraction": 0.98,  # almost entirely white
}

MESSAGES: dict[str, str] = {
    "too_small": "The photo is very small ({width}x{height} px). Move closer to the skin, or send the original "
    "photo instead of a thumbnail or a cropped screenshot.",
    "blurry": "The photo looks blurry. Hold the camera steady, tap the screen on the skin to focus, and take it "
    "again about a hand's width away.",
    "too_dark": "The photo is too dark. Use daylight or a brighter room and keep your shadow off the skin.",
    "overexposed": "Part of the photo is washed out (too bright). Turn off the flash and avoid direct sunlight; "
    "indirect daylight works best.",
    "low_contrast": "The photo looks hazy or flat. Wipe the camera lens and avoid a bright light or window "
    "behind the skin.",
    "compressed": "The photo is heavily compressed and has lost detail. Send the original photo from the camera, "
    "not a copy from a messaging app or a screenshot.",
    "unusable": "This photo cannot be checked: {reason}. Take a clear, well-lit close-up of the skin and try again.",
}

WARNING_CODES = ("too_small", "blurry", "too_dark", "overexposed", "low_contrast", "compressed")

_cache: dict[tuple[str, int], dict[str, float]] = {}


# --- thresholds ---------------------------------------------------------------------------------------------


def load_thresholds(model_dir: str | Path = config.MODEL_DIR) -> dict[str, float]:
    """Thresholds from ``<model_dir>/quality.json`` (key ``thresholds``) over the built-in defaults.

    A missing file gives the defaults; keys missing from the file keep their default. A file that exists but is
    not valid JSON with a ``thresholds`` object raises ``ValueError`` (a broken model folder should fail loudly
    at start-up, not silently change behaviour).
    """
    path = Path(model_dir) / QUALITY_FILE
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return dict(DEFAULT_THRESHOLDS)
    key = (str(path.resolve()), mtime)
    if key not in _cache:
        try:
            payload = json.loads(path.read_text())
            fitted = payload["thresholds"]
            if not isinstance(fitted, dict):
                raise TypeError("'thresholds' is not an object")
            merged = dict(DEFAULT_THRESHOLDS)
            merged.update({str(k): float(v) for k, v in fitted.items()})
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a valid quality thresholds file ({exc})") from exc
        _cache.clear()
        _cache[key] = merged
    return dict(_cache[key])


# --- metrics ------------------------------------------------------------------------------------------------


def _luminance(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim == 2:
        return rgb
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # Y = 0.299 R + 0.587 G + 0.114 B
    if rgb.ndim == 3 and rgb.shape[2] == 1:
        return rgb[..., 0]
    raise ValueError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")


def _analysis_view(img: np.ndarray, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """Shrink (INTER_AREA, aspect ratio kept) so the short side is ``side`` px; smaller images stay as they are."""
    h, w = img.shape[:2]
    scale = side / min(h, w)
    if scale >= 1:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _block_crop(img: np.ndarray) -> np.ndarray:
    """Centre crop of at most BLOCK_MAX_SIDE px per side, offsets multiples of 8 (keeps a JPEG grid in phase)."""
    h, w = img.shape[:2]
    y0 = max(0, (h - BLOCK_MAX_SIDE) // 2) // 8 * 8
    x0 = max(0, (w - BLOCK_MAX_SIDE) // 2) // 8 * 8
    return img[y0 : y0 + BLOCK_MAX_SIDE, x0 : x0 + BLOCK_MAX_SIDE]


_SECOND_DERIVATIVES = [
    np.array([[1, -2, 1]], np.float32),
    np.array([[1], [-2], [1]], np.float32),
    np.array([[1, 0, 0], [0, -2, 0], [0, 0, 1]], np.float32) / 2,  # diagonals: steps are sqrt(2) px long
    np.array([[0, 0, 1], [0, -2, 0], [1, 0, 0]], np.float32) / 2,
]


def _variance(x: np.ndarray) -> float:
    """Population variance (as ``x.var()``), one pass in OpenCV."""
    _, std = cv2.meanStdDev(x)
    return float(std[0, 0]) ** 2


def sharpness(lum: np.ndarray, lum_variance: float | None = None) -> float:
    """Weakest directional second-derivative variance over the luminance variance (x SHARPNESS_SCALE)."""
    lum = lum.astype(np.float32)
    if min(lum.shape) < 3:
        return 0.0
    inner = (slice(1, -1), slice(1, -1))  # ignore the replicated border
    weakest = min(_variance(cv2.filter2D(lum, -1, k, borderType=cv2.BORDER_REPLICATE)[inner])
                  for k in _SECOND_DERIVATIVES)
    if lum_variance is None:
        lum_variance = _variance(lum)
    return SHARPNESS_SCALE * weakest / (lum_variance + 25.0)  # +25 (std 5): flat images do not blow up


def blockiness(gray: np.ndarray, block: int = 8) -> float:
    """JPEG blocking: mean |step| across 8x8 block edges relative to the mean |step| elsewhere (1.0 = none).

    ``block`` is the JPEG block size in ``gray``'s pixels: 8, or 4 for a JPEG decoded at half size
    (``skinscan.decode.decode_upload``; measured on 80 photos enlarged to a 2048 px short side: JPEG quality 5-10
    flagged 100% at half size vs 98.8% at full size, quality 85-95 flagged 0% at both).
    Gradients are folded by position mod ``block`` and the strongest phase is compared with the others, so a
    grid moved by EXIF rotation or cropping is still found. Measured at the resolution the file was stored at (or
    half of it, see ``block``), on a centre crop of at most BLOCK_MAX_SIDE px per side (offsets are multiples of 8, keeping the grid).
    """
    if min(gray.shape) < 32:
        return 1.0
    g = _block_crop(gray).astype(np.float32)
    ratios = []
    for diff in (np.abs(np.diff(g, axis=1)).mean(axis=0), np.abs(np.diff(g, axis=0)).mean(axis=1)):
        n = diff.size // block * block
        phases = diff[:n].reshape(-1, block).mean(axis=0)
        best = int(np.argmax(phases))
        rest = np.delete(phases, best).mean()
        ratios.append(float(phases[best] / max(rest, 0.5)))  # floor: a flat image is not "blocky"
    return float(np.mean(ratios))


def compute_metrics(rgb: np.ndarray, jpeg_block: int = 8, full_size: tuple[int, int] | None = None) -> dict[str, float]:
    """All quality measures of an RGB uint8 image (see the module docstring).

    ``jpeg_block`` and ``full_size`` (height, width) describe a photo decoded at reduced size (``decode_upload``).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {rgb.dtype}")
    if rgb.ndim not in (2, 3) or rgb.ndim == 3 and rgb.shape[2] not in (1, 3):
        raise ValueError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    if min(rgb.shape[:2]) == 0:
        raise ValueError("empty image")
    h, w = full_size or rgb.shape[:2]
    small = _analysis_view(rgb)  # shrink first: everything below is cheap even for a 50 MP photo
    view = _luminance(small)
    # One 256-bin histogram of the 8-bit luminance gives the mean, spread, percentiles and dark/bright shares
    # exactly (the values are integers), in one pass instead of a dozen passes over a float copy.
    hist = np.bincount(view.ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256, dtype=np.float64)
    n = hist.sum()
    mean = float(hist @ levels / n)
    variance = float(hist @ (levels - mean) ** 2 / n)
    p1, p5, p95, p99 = _percentiles(hist, (1, 5, 95, 99))
    peak = view if small.ndim == 2 else np.maximum.reduce(cv2.split(small))  # brightest channel
    lap = cv2.Laplacian(view, cv2.CV_32F, ksize=1)
    return {
        "width": int(w),
        "height": int(h),
        "short_side": int(min(h, w)),
        "sharpness": sharpness(view, variance),
        "laplacian_variance": _variance(lap),
        "mean_luminance": mean,
        "dark_fraction": float(hist[:DARK_LEVEL].sum() / n),
        "bright_fraction": float(hist[BRIGHT_LEVEL + 1 :].sum() / n),
        "clipped_fraction": float(np.count_nonzero(peak >= CLIP_LEVEL) / n),
        "contrast": float(p95 - p5),
        "luminance_std": math.sqrt(variance),
        "full_range": float(p99 - p1),
        "blockiness": blockiness(_luminance(_block_crop(rgb)), jpeg_block),
    }


def _percentiles(hist: np.ndarray, qs) -> list[float]:
    """``np.percentile`` (linear interpolation) of the values a 256-bin integer histogram counts."""
    cum = np.cumsum(hist)
    out = []
    for q in qs:
        pos = q / 100 * (cum[-1] - 1)
        lo = math.floor(pos)
        v_lo, v_hi = np.searchsorted(cum, [lo, lo + 1], side="right")
        out.append(float(v_lo + (min(v_hi, 255) - v_lo) * (pos - lo)))
    return out


# --- decision -----------------------------------------------------------------------------------------------


def raw_flags(m: dict[str, float], t: dict[str, float]) -> dict[str, bool]:
    """Each warning code's own test, before one cause's warning hides another's (see warnings_from_metrics)."""
    return {
        "too_small": m["short_side"] < t["min_side"],
        "blurry": m["sharpness"] < t["min_sharpness"],
        "too_dark": m["mean_luminance"] < t["min_mean_luminance"],
        "overexposed": m["clipped_fraction"] > t["max_clipped_fraction"],
        "low_contrast": m["contrast"] < t["min_contrast"],
        "compressed": m["blockiness"] > t["max_blockiness"],
    }


def warnings_from_metrics(m: dict[str, float], t: dict[str, float]) -> list[str]:
    """Warning codes (in WARNING_CODES order) that ``m`` triggers under thresholds ``t``.

    One cause, one piece of advice: a dark or washed-out photo also has little contrast, so ``low_contrast`` is
    left out when ``too_dark`` or ``overexposed`` fires.
    """
    f = raw_flags(m, t)
    if f["too_dark"] or f["overexposed"]:
        f["low_contrast"] = False
    return [code for code in WARNING_CODES if f[code]]


def unusable_reason(m: dict[str, float], t: dict[str, float]) -> str | None:
    """Why the photo cannot be classified at all, or None."""
    if m["short_side"] < t["unusable_min_side"]:
        return f"it is only {m['width']}x{m['height']} px"
    if m["dark_fraction"] >= t["unusable_dark_fraction"]:
        return "it is almost entirely black"
    if m["bright_fraction"] >= t["unusable_bright_fraction"]:
        return "it is almost entirely white"
    if m["full_range"] < t["unusable_min_contrast"]:
        return "it is a single flat colour"
    return None


def check_quality(rgb: np.ndarray, thresholds: dict[str, float] | None = None, jpeg_block: int = 8,
                  full_size: tuple[int, int] | None = None) -> dict:
    """Quality verdict for a decoded HxWx3 uint8 RGB photo; ``thresholds`` default to ``load_thresholds()``."""
    t = dict(DEFAULT_THRESHOLDS)
    t.update(load_thresholds() if thresholds is None else thresholds)
    m = compute_metrics(rgb, jpeg_block, full_size)
    reason = unusable_reason(m, t)
    warnings = []
    if reason is not None:
        warnings.append({"code": "unusable", "message": MESSAGES["unusable"].format(reason=reason)})
    for code in warnings_from_metrics(m, t):
        warnings.append({"code": code, "message": MESSAGES[code].format(**m)})
    metrics = {k: (v if isinstance(v, int) else _round(v)) for k, v in m.items()}
    return {"ok": not warnings, "usable": reason is None, "warnings": warnings, "metrics": metrics}


def _round(x: float) -> float:
    return float(f"{x:.4g}") if math.isfinite(x) else x
