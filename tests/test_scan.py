"""`skinscan scan` on a small mixed folder: one JSON line per file, errors included, the scan goes on."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

from skinscan import config


def test_scan_mixed_folder(tmp_path, data_root, model_dir):
    folder = tmp_path / "mixed"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(sorted((data_root / "skin8" / "train" / "chickenpox").iterdir())[0], folder / "pox.jpg")
    shutil.copy(sorted((data_root / "skin8" / "train" / "nail_fungus").iterdir())[0], folder / "nested" / "nail.jpg")
    shutil.copy(sorted((data_root / "non_skin").iterdir())[0], folder / "nested" / "fish.JPEG")
    (folder / "notes.jpg").write_bytes(b"this is a text file with an image extension")
    good = sorted((data_root / "skin8" / "train" / "shingles").iterdir())[0].read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 3])
    (folder / "readme.txt").write_text("not an image, not scanned")
    out = tmp_path / "scan.jsonl"
    cmd = [sys.executable, "-m", "skinscan", "scan", str(folder), "--out", str(out), "--batch", "2"]
    subprocess.run(cmd, check=True, cwd=config.ROOT, timeout=300)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 5
    by_name = {l["path"].rsplit("/", 1)[1]: l for l in lines}
    assert set(by_name) == {"pox.jpg", "nail.jpg", "fish.JPEG", "notes.jpg", "cut.png"}
    assert by_name["notes.jpg"]["error"]["code"] == "not_an_image"
    assert by_name["cut.png"]["error"]["code"] in ("truncated", "not_an_image")
    assert by_name["pox.jpg"]["verdict"] in ("disease", "unknown") and by_name["pox.jpg"]["skin"]["is_skin"]
    assert by_name["fish.JPEG"]["verdict"] in ("disease", "unknown", "not_skin")  # gate rates: test_pipeline
    assert by_name["fish.JPEG"]["skin"]["score"] < by_name["pox.jpg"]["skin"]["score"]
    summary = subprocess.run([sys.executable, "-m", "skinscan", "scan", str(folder), "--summary"], check=True,
                             cwd=config.ROOT, capture_output=True, text=True, timeout=300).stdout
    counts = json.loads(summary)
    assert counts["images"] == 5 and sum(counts["verdicts"].values()) == 5
