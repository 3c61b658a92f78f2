"""How the served answer holds up when the same photo is taken worse: phone-camera conditions, as JSON.

    .venv/bin/python -m bench.robustness [--out bench/results/robustness.json] [--model DIR]

The hidden users' photos come from cameras and light that no source here has. This re-renders the shipped model's
grouped test split (one photo per near-duplicate group, every source; chosen on nothing) under one condition at a
time, encodes it as a JPEG upload and runs the whole served pipeline on it (decode, quality, skin gate, model,
unknown gate: ``skinscan.pipeline.Pipeline.run_batch``, the LiteRT model the API serves). Per condition: for the
photos of the 8, the right answer (verdict "disease" with the true infection), top-1, called unknown, refused by the
quality check ("retake the photo": the right response to a ruined photo, but no answer), rejected as not skin;
for other conditions and healthy skin, the share given a disease; and how many photos answered right as taken are
no longer answered right. Each condition is seeded per photo: a rerun gives the same figures.

With ``--folds DIR ...`` (fold models of ``training.train --holdout-source S --out DIR/S``) it measures instead each
fold model on the photos of the source it never saw (as ``training.compare_folds``), under ``FOLD_CONDITIONS``: top-1,
the AUROC of the unknown score between the 8 and out-of-scope photos, and at the shipped rule (calibration.json and
gates.json of ``--model``, skin gate left out) the right answer and the share of out-of-scope photos given a disease.
That is how a training recipe is judged on photos both new in source and in camera (experiments.json).

The conditions are renderings, not real photos: "darker skin" in particular darkens and browns a light-skinned
photo (``training.data.darker_skin_tone``); real darker skin shows disease differently, so treat that row as a lower
bound on the harm, not an estimate of the accuracy on darker skin. "atlas_logo" is a shortcut check, not a camera:
the DermNet atlas stamps its logo on every photo, mostly of other conditions, so a model that learned "logo -> other"
calls more of the other sources' photos of the 8 "unknown" once the logo is pasted on them (experiments.json).
"""
from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import cv2
import numpy as np

from skinscan import config
from skinscan.decode import InputError, decode_upload
from skinscan.pipeline import Pipeline
from skinscan.preprocess import to_model_input
from training import data


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes()


def long_side(rgb: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def dim(rgb: np.ndarray, rng) -> np.ndarray:
    """Indoor light: under-exposed (gamma), then sensor noise and the camera's brightening."""
    x = (rgb.astype(np.float32) / 255) ** 1.8 * 0.55
    x = x + rng.normal(0, 0.02, x.shape)
    return np.clip(x / 0.55 ** 0.5 * 255, 0, 255).astype(np.uint8)


def cast(rgb: np.ndarray, gains) -> np.ndarray:
    return np.clip(rgb.astype(np.float32) * np.array(gains, np.float32), 0, 255).astype(np.uint8)


def wide_framing(rgb: np.ndarray, rng) -> np.ndarray:
    """The lesion small in the frame: the photo at 45% of the side, on a blurred, darker copy of itself."""
    h, w = rgb.shape[:2]
    back = cv2.GaussianBlur(rgb, (0, 0), max(h, w) / 30).astype(np.float32) * 0.8
    small = cv2.resize(rgb, (max(1, int(w * 0.45)), max(1, int(h * 0.45))), interpolation=cv2.INTER_AREA)
    y0, x0 = int(rng.integers(0, h - small.shape[0] + 1)), int(rng.integers(0, w - small.shape[1] + 1))
    back[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return back.astype(np.uint8)


def on_white(rgb: np.ndarray) -> np.ndarray:
    """The photo at 60% of the side, centred on a plain white surround (a product-shot or scanner look; the healthy
    hands in training are on white, so "white background -> healthy" would be a shortcut)."""
    h, w = rgb.shape[:2]
    canvas = np.full((h, w, 3), 255, np.uint8)
    small = cv2.resize(rgb, (max(1, int(w * 0.6)), max(1, int(h * 0.6))), interpolation=cv2.INTER_AREA)
    y0, x0 = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    canvas[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return canvas


def off_centre(rgb: np.ndarray, rng) -> np.ndarray:
    """Half the photo's area, from a corner: part of the lesion out of frame."""
    h, w = rgb.shape[:2]
    ch, cw = int(h * 0.7), int(w * 0.7)
    y0, x0 = (h - ch) * int(rng.integers(0, 2)), (w - cw) * int(rng.integers(0, 2))
    return rgb[y0 : y0 + ch, x0 : x0 + cw]


def green_paint(rgb: np.ndarray, rng) -> np.ndarray:
    """Brilliant-green antiseptic dabbed on the spots (a chickenpox custom in parts of Europe; web chickenpox photos show
    it and no training photo does): 12-30 soft blobs of 1.5-4% of the short side, placed where the skin is reddest."""
    h, w = rgb.shape[:2]
    x = rgb.astype(np.float32)
    red = np.clip(x[..., 0] - x[..., 1], 0, None).ravel() ** 2 + 1.0
    out, side = x.copy(), min(h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in rng.choice(h * w, int(rng.integers(12, 31)), replace=False, p=red / red.sum()):
        cy, cx, r = i // w, i % w, side * rng.uniform(0.015, 0.04)
        a = np.clip(1.5 - np.hypot(yy - cy, xx - cx) / r, 0, 1)[..., None] * rng.uniform(0.6, 0.9)
        out = out * (1 - a) + np.array([30, 150, 70], np.float32) * (0.6 + 0.4 * x / 255) * a
    return np.clip(out, 0, 255).astype(np.uint8)


def darker(rgb: np.ndarray, rng) -> np.ndarray:
    return data.darker_skin_tone(rgb, rng, muted_redness=True)


@functools.cache
def atlas_logo() -> np.ndarray:
    """The DermNet atlas's logo as an alpha matte (training.data.atlas_logo over the atlas's photos)."""
    from training.features import catalogue

    return data.atlas_logo([config.DATA_ROOT / r["path"] for r in catalogue() if r["source"] == config.ATLAS_SOURCE])


# name -> (what it stands for, rgb -> JPEG bytes); everything is uploaded as a JPEG, as a phone sends it
CONDITIONS = {
    "as_taken": ("the photo itself (re-encoded, JPEG 92)", lambda im, rng: jpeg(im)),
    "jpeg_20": ("heavy compression (messaging apps), JPEG 20", lambda im, rng: jpeg(im, 20)),
    "small_200": ("a thumbnail: long side 200 px", lambda im, rng: jpeg(long_side(im, 200))),
    "large_2000": ("a phone-sized upload: long side 2000 px (upscaled)", lambda im, rng: jpeg(long_side(im, 2000))),
    "blur": ("out of focus: Gaussian blur, sigma 1% of the long side", lambda im, rng: jpeg(cv2.GaussianBlur(im, (0, 0), max(im.shape[:2]) / 100))),
    "dim_noisy": ("indoor light: under-exposed, noisy, brightened", lambda im, rng: jpeg(dim(im, rng))),
    "warm_light": ("tungsten light: red x1.2, blue x0.75", lambda im, rng: jpeg(cast(im, (1.2, 1.0, 0.75)))),
    "cool_light": ("shade / flash: red x0.85, blue x1.2", lambda im, rng: jpeg(cast(im, (0.85, 1.0, 1.2)))),
    "rotated_90": ("the phone turned: rotated 90 degrees", lambda im, rng: jpeg(np.rot90(im))),
    "off_centre": ("framed off-centre: 70% of each side from a corner", lambda im, rng: jpeg(off_centre(im, rng))),
    "wide_framing": ("taken from further away: the photo at 45% of the side on a blurred background", lambda im, rng: jpeg(wide_framing(im, rng))),
    "on_white": ("on a white background: the photo at 60% of the side, centred on white", lambda im, rng: jpeg(on_white(im))),
    "darker_skin": ("a darker-skin rendering: lightness x0.35-0.7, redness muted, browner", lambda im, rng: jpeg(darker(im, rng))),
    "green_paint": ("green antiseptic dabbed on the spots: 12-30 blobs where the skin is reddest (a shortcut check: no "
                    "training photo has it)", lambda im, rng: jpeg(green_paint(im, rng))),
    "atlas_logo": ("the DermNet atlas's logo pasted where the atlas stamps it (its own photos, which carry it, as taken)",
                   lambda im, rng: jpeg(data.paste_logo(im, atlas_logo()))),
}
AS_TAKEN_FROM = {"atlas_logo": config.ATLAS_SOURCE}  # condition -> the photo source it leaves as taken


FOLD_CONDITIONS = ("as_taken", "wide_framing", "dim_noisy", "blur")


def test_photos(model_dir: Path) -> list[tuple[Path, str, str, int]]:
    """(path, source, kind, class index or -1) of the model's grouped test split, one photo per near-duplicate group:
    the photos of metrics.json's test figures (split.json in catalogue order, ``training.crossval.one_per_group``)."""
    from training import crossval

    split = json.loads((model_dir / "split.json").read_text())
    rows = sorted((f"{root}/{rel}", row) for key, root in (("files", "skin8/train"), ("other_files", "other_conditions"))
                  for rel, row in split[key].items())
    keep = crossval.one_per_group([row["group"] for _, row in rows], np.array([row["split"] == "test" for _, row in rows]))
    out = []
    for (rel, row), k in zip(rows, keep):
        if k:
            top, folder = rel.split("/")[0], Path(rel).parent.name
            kind = "disease" if top == "skin8" else ("healthy" if folder.startswith("healthy") else "other")
            out.append((config.DATA_ROOT / rel, row["source"], kind, config.CLASS_IDS.index(folder) if kind == "disease" else -1))
    return out


def outcome(result, label: int) -> dict:
    if isinstance(result, InputError):
        return {"verdict": "refused_quality" if result.code == "unusable_image" else result.code, "top1": None}
    named = [c["id"] for c in result.get("candidates", [])]
    return {"verdict": result["verdict"], "top1": config.CLASS_IDS.index(result["differential"][0]["id"])
            if result["differential"] else None, "right": result["verdict"] == "disease" and named == [config.CLASS_IDS[label]]
            if label >= 0 else None, "useful": config.CLASS_IDS[label] in named if label >= 0 else None}


def summarise(rows: list[dict]) -> dict:
    out = {}
    dis = [r for r in rows if r["kind"] == "disease"]
    if dis:
        out["in_scope"] = {"n": len(dis), **{k: round(float(np.mean([f(r) for r in dis])), 3) for k, f in {
            "right_answer": lambda r: bool(r.get("right")),
            "useful": lambda r: bool(r.get("useful")),
            "uncertain": lambda r: r["verdict"] == "uncertain",
            "top1": lambda r: r["top1"] == r["label"],
            "called_unknown": lambda r: r["verdict"] == "unknown",
            "refused_quality": lambda r: r["verdict"] == "refused_quality",
            "rejected_not_skin": lambda r: r["verdict"] == "not_skin"}.items()}}
    for kind in ("other", "healthy"):
        sel = [r for r in rows if r["kind"] == kind]
        if sel:
            out[kind] = {"n": len(sel), **{k: round(float(np.mean([r["verdict"] == v for r in sel])), 3)
                                           for k, v in (("given_a_disease", "disease"), ("uncertain", "uncertain"))}}
    return out


def fold_models(dirs: list[str], shipped: Pipeline) -> dict:
    """Each fold model under ``dirs`` on its never-seen source's photos (training.crossval.heldout_photos), per condition,
    judged by the ``shipped`` pipeline's rule (its temperature, unknown score and threshold)."""
    from sklearn.metrics import roc_auc_score

    from skinscan.classifier import KerasClassifier
    from skinscan.unknown_gate import tiers, unknown_scores
    from training import crossval

    feats = crossval.load_features(config.BACKBONE)
    test = crossval.grouped_masks(feats, config.SEED)["test"]
    out = {}
    for d in dirs:
        for source in crossval.fold_names(feats):
            fold = Path(d) / source
            if source in crossval.REPORT_ONLY or not (fold / "model.keras").exists():
                continue
            held = crossval.heldout_photos(feats, source, test)
            y, in_scope = feats["y"][held], feats["kinds"][held] == "disease"
            images = [data.load_rgb(config.DATA_ROOT / p) for p in feats["paths"][held]]
            clf = KerasClassifier(fold)
            for name in FOLD_CONDITIONS:
                x = np.stack([to_model_input(decode_upload(CONDITIONS[name][1](im, np.random.default_rng([config.SEED, i]))).rgb,
                                             clf.input_size, colour_constancy=clf.colour_constancy) for i, im in enumerate(images)])
                logits = np.concatenate([clf.forward(x[i : i + 32])[0] for i in range(0, len(x), 32)])
                score = unknown_scores(logits, shipped.temperature, len(config.CLASS_IDS), shipped.unknown.top)
                named = tiers(logits, shipped.temperature, len(config.CLASS_IDS), shipped.unknown.top,
                              shipped.unknown.threshold, shipped.unknown.confident) == "disease"
                top1 = logits[:, : len(config.CLASS_IDS)].argmax(1) == y
                row = {"n_in_scope": int(in_scope.sum()), "top1": round(float(top1[in_scope].mean()), 3) if in_scope.any() else None,
                       "auroc": round(float(roc_auc_score(~in_scope, score)), 3) if 0 < in_scope.sum() < len(in_scope) else None,
                       "right_answer": round(float((named & top1)[in_scope].mean()), 3) if in_scope.any() else None,
                       "out_of_scope_given_a_disease": round(float(named[~in_scope].mean()), 3)}
                out.setdefault(d, {}).setdefault(source, {})[name] = row
                print(f"  {d} {source} {name}: {json.dumps(row)}", flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(config.MODEL_DIR))
    ap.add_argument("--out", default=None, help="default: bench/results/robustness.json (with --folds: required)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--folds", nargs="*", default=None, help="fold-model directories to measure instead of the shipped model")
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.folds:
        if not args.out:
            raise SystemExit("--folds needs --out FILE.json (bench/results/robustness.json is the shipped model's)")
        shipped = Pipeline(args.model)
        Path(args.out).write_text(json.dumps({"rule_of": shipped.model_info, "conditions": {
            c: CONDITIONS[c][0] for c in FOLD_CONDITIONS}, "folds": fold_models(args.folds, shipped)}, indent=1))
        print(f"written {args.out} ({time.time() - t0:.0f} s)")
        return
    args.out = args.out or str(config.ROOT / "bench" / "results" / "robustness.json")
    pipeline = Pipeline(args.model)
    photos = test_photos(Path(args.model))
    images = [data.load_rgb(p) for p, *_ in photos]
    print(f"{len(photos)} test photos ({sum(k == 'disease' for _, _, k, _ in photos)} of the 8)")
    results, base_right = {}, None
    for name, (what, render) in CONDITIONS.items():
        uploads = [jpeg(im) if AS_TAKEN_FROM.get(name) == src else render(im, np.random.default_rng([config.SEED, i]))
                   for i, (im, (_, src, _, _)) in enumerate(zip(images, photos))]
        answers = []
        for s in range(0, len(uploads), args.batch):
            answers += pipeline.run_batch(uploads[s : s + args.batch])
        rows = [{"source": src, "kind": kind, "label": label, **outcome(a, label)}
                for (_, src, kind, label), a in zip(photos, answers)]
        right = np.array([bool(r.get("right")) for r in rows if r["kind"] == "disease"])
        base_right = right if base_right is None else base_right
        results[name] = {"what": what, "all": summarise(rows),
                         "by_source": {s: summarise([r for r in rows if r["source"] == s]) for s in sorted({r["source"] for r in rows})},
                         "lost_right_answers": int((base_right & ~right).sum()), "gained_right_answers": int((~base_right & right).sum())}
        a = results[name]["all"]
        print(f"  {name:13s} right {a['in_scope']['right_answer']:.3f} top-1 {a['in_scope']['top1']:.3f} "
              f"unknown {a['in_scope']['called_unknown']:.3f} quality {a['in_scope']['refused_quality']:.3f} "
              f"other {a.get('other', {}).get('given_a_disease', 0):.3f} healthy {a.get('healthy', {}).get('given_a_disease', 0):.3f}",
              flush=True)
    out = {"model": pipeline.model_info, "photos": "grouped test split, one per near-duplicate group",
           "n": {k: sum(kind == k for _, _, kind, _ in photos) for k in ("disease", "other", "healthy")},
           "seconds": round(time.time() - t0, 1), "conditions": results}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"written {args.out} ({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
