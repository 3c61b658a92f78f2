"""``skinscan`` command line.

    skinscan scan DIR [--out FILE.jsonl] [--summary]     run the pipeline in-process on every image under DIR
    skinscan predict PHOTO [PHOTO ...] [--url URL] [--json]   ask a running server
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from skinscan import config


def iter_images(root: Path):
    """Every file under root that looks like an image (by extension), sorted; a file path is used as is."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in config.IMAGE_EXTENSIONS:
            yield path


def scan(args) -> int:
    from tqdm import tqdm

    from skinscan.decode import InputError
    from skinscan.pipeline import Pipeline

    root = Path(args.dir)
    if not root.exists():
        print(f"skinscan scan: {root} does not exist", file=sys.stderr)
        return 2
    paths = list(iter_images(root))
    pipeline = Pipeline(args.model)
    out = open(args.out, "w") if args.out else (None if args.summary else sys.stdout)
    counts: Counter = Counter()
    with tqdm(total=len(paths), desc="scan", unit="img", file=sys.stderr) as bar:
        for i in range(0, len(paths), args.batch):
            chunk = paths[i : i + args.batch]
            uploads = []
            for p in chunk:
                try:
                    uploads.append(p.read_bytes())
                except OSError:
                    uploads.append(b"")
            for path, result in zip(chunk, pipeline.run_batch(uploads)):
                if isinstance(result, InputError):
                    line = {"path": str(path), "error": result.as_dict()}
                    counts["error:" + result.code] += 1
                else:
                    line = {"path": str(path), **result}
                    counts[result["verdict"]] += 1
                if out is not None:
                    out.write(json.dumps(line) + "\n")
            bar.update(len(chunk))
    if args.out:
        out.close()
    if args.summary:
        print(json.dumps({"images": len(paths), "verdicts": dict(sorted(counts.items()))}, indent=2))
    return 0


def format_result(name: str, r: dict) -> str:
    if "error" in r:
        return f"{name}: error {r['error']['code']}: {r['error']['message']}"
    lines = [f"{name}:"]
    if r["verdict"] == "not_skin":
        lines.append(f"  not a skin image (skin score {r['skin']['score']:.2f})")
    elif r["verdict"] == "unknown":
        lines.append("  does not look like any of the 8 conditions skinscan recognises (unknown condition)")
    elif r["verdict"] == "uncertain":
        a, b = r["candidates"]
        lines.append(f"  not sure: looks most like {a['name']} ({a['probability']:.0%}) or {b['name']} "
                     f"({b['probability']:.0%}), or it may be another condition")
        lines.append("  see a doctor or pharmacist; a sharp, well-lit close-up may give a clearer answer")
    else:
        d, info = r["disease"], r["info"]
        lines.append(f"  most likely: {d['name']} ({d['probability']:.0%}); urgency: {info['urgency'].replace('_', ' ')}")
    if r["differential"]:
        lines.append("  differential: " + ", ".join(f"{e['name']} {e['probability']:.0%}" for e in r["differential"]))
    for w in r["quality"]["warnings"]:
        lines.append(f"  quality: {w['message']}")
    lines.append(f"  {r['disclaimer']}")
    return "\n".join(lines)


def predict(args) -> int:
    from skinscan.client import Client, ClientError

    client = Client(args.url)
    try:
        results = client.predict_batch([Path(p) for p in args.photos]) if len(args.photos) > 1 \
            else [client.predict(Path(args.photos[0]))]
    except ClientError as err:
        print(f"skinscan predict: {err}", file=sys.stderr)
        return 1
    for path, r in zip(args.photos, results):
        print(json.dumps({"path": path, **r}) if args.json else format_result(path, r))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="skinscan", description="Skin-infection photo triage (not a diagnosis).")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scan", help="run the pipeline in-process on every image under DIR")
    s.add_argument("dir")
    s.add_argument("--out", help="write JSON lines here (default: stdout)")
    s.add_argument("--summary", action="store_true",
                   help="print counts by verdict (disease, uncertain, unknown, not_skin) and error code")
    s.add_argument("--batch", type=int, default=16)
    s.add_argument("--model", default=str(config.MODEL_DIR))
    s.set_defaults(func=scan)
    p = sub.add_parser("predict", help="send photos to a running skinscan server")
    p.add_argument("photos", nargs="+")
    p.add_argument("--url", default=config.API_URL)
    p.add_argument("--json", action="store_true", help="print raw JSON lines")
    p.set_defaults(func=predict)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
