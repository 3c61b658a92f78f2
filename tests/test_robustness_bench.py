"""bench.robustness: its renderings are real uploads of the intended shape, the same on every run, and the served
pipeline answers every one of them (the bench's figures rest on this)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from bench import robustness
from skinscan.decode import decode_upload
from training import data


def test_every_condition_renders_an_upload_the_pipeline_answers(data_root, pipeline):
    path = sorted((data_root / "skin8" / "train" / "cellulitis").glob("*.jp*g"))[0]
    rgb = data.load_rgb(path)
    h, w = rgb.shape[:2]
    uploads, sizes = {}, {}
    for name, (_, render) in robustness.CONDITIONS.items():
        first, again = render(rgb, np.random.default_rng([1, 2])), render(rgb, np.random.default_rng([1, 2]))
        assert first == again, f"{name} is not reproducible from its seed"
        uploads[name], sizes[name] = decode_upload(first).rgb, Image.open(io.BytesIO(first)).size  # (width, height)
    assert max(sizes["small_200"]) == 200 and max(sizes["large_2000"]) == 2000
    assert sizes["rotated_90"] == (h, w) and sizes["wide_framing"] == (w, h)
    assert sizes["off_centre"] == (int(w * 0.7), int(h * 0.7))
    assert uploads["dim_noisy"].mean() < uploads["as_taken"].mean()
    logo = uploads["atlas_logo"].astype(float) - uploads["as_taken"]  # brighter bottom left only
    assert logo[h * 2 // 3 :, : w // 4].mean() > 10 and abs(logo[: h // 2]).mean() < 3 and abs(logo[:, w // 2 :]).mean() < 3
    green = uploads["green_paint"].astype(float) - uploads["as_taken"]  # greener and less red where painted, nothing else
    assert (green[..., 1] - green[..., 0]).mean() > 3 and (abs(green).sum(axis=2) < 10).mean() > 0.5
    assert abs(uploads["as_taken"].astype(float) - rgb).mean() < 3  # JPEG 92 of the photo itself
    results = pipeline.run_batch([robustness.jpeg(u) for u in uploads.values()])
    assert all(isinstance(r, dict) and r["verdict"] in ("disease", "uncertain", "unknown", "not_skin") for r in results)


def test_summary_counts_what_a_user_sees():
    rows = [{"kind": "disease", "label": 0, "top1": 0, "verdict": "disease", "right": True, "useful": True},
            {"kind": "disease", "label": 1, "top1": 1, "verdict": "unknown", "right": False, "useful": False},
            {"kind": "disease", "label": 2, "top1": None, "verdict": "refused_quality"},
            {"kind": "disease", "label": 3, "top1": 4, "verdict": "uncertain", "right": False, "useful": True},
            {"kind": "other", "label": -1, "top1": 3, "verdict": "disease"},
            {"kind": "other", "label": -1, "top1": 3, "verdict": "uncertain"},
            {"kind": "healthy", "label": -1, "top1": 3, "verdict": "unknown"}]
    s = robustness.summarise(rows)
    assert s["in_scope"] == {"n": 4, "right_answer": 0.25, "useful": 0.5, "uncertain": 0.25, "top1": 0.5,
                             "called_unknown": 0.25, "refused_quality": 0.25, "rejected_not_skin": 0.0}
    assert s["other"] == {"n": 2, "given_a_disease": 0.5, "uncertain": 0.5}
    assert s["healthy"] == {"n": 1, "given_a_disease": 0.0, "uncertain": 0.0}
