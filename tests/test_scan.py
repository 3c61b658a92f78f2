"""`skinscan scan` on a small mixed folder: one JSON line per file, errors included, the scan goes on."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

from skinscan import config


def first_test_photo(model_dir, data_root, cls: str):
    """The first test-split photo of ``cls`` (never trained on, per split.json)."""
    split = json.loads((model_dir / "split.json").read_text())["files"]
    rel = sorted(f for f, v in split.items() if v["split"] == "test" and f.split("/")[0] == cls)[0]
    return data_root / "skin8" / "train" / rel


def test_scan_mixed_folder(tmp_path, data_root, model_dir):
    folder = tmp_path / "mixed"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(first_test_photo(model_dir, data_root, "chickenpox"), folder / "pox.jpg")
    shutil.copy(first_test_photo(model_dir, data_root, "nail_fungus"), folder / "nested" / "nail.jpg")
    shutil.copy(data_root / "non_skin" / "n04285008_sports_car.JPEG", folder / "nested" / "car.JPEG")
    (folder / "notes.jpg").write_bytes(b"this is a text file with an image extension")
    good = first_test_photo(model_dir, data_root, "shingles").read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 3])
    (folder / "readme.txt").write_text("not an image, not scanned")
    out = tmp_path / "scan.jsonl"
    cmd = [sys.executable, "-m", "skinscan", "scan", str(folder), "--out", str(out), "--batch", "2"]
    subprocess.run(cmd, check=True, cwd=config.ROOT, timeout=300)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 5
    by_name = {l["path"].rsplit("/", 1)[1]: l for l in lines}
    assert set(by_name) == {"pox.jpg", "nail.jpg", "car.JPEG", "notes.jpg", "cut.png"}
    assert by_name["notes.jpg"]["error"]["code"] == "not_an_image"
    assert by_name["cut.png"]["error"]["code"] == "truncated"  # a JPEG cut short, whatever its name says
    for name, cls in (("pox.jpg", "chickenpox"), ("nail.jpg", "nail_fungus")):
        r = by_name[name]
        assert r["skin"]["is_skin"] is True and r["verdict"] in ("disease", "unknown"), r["verdict"]
        assert cls in [d["id"] for d in r["differential"]], (name, r["differential"])
    car = by_name["car.JPEG"]
    assert car["verdict"] == "not_skin" and car["disease"] is None and car["differential"] == []
    assert car["skin"]["score"] < by_name["pox.jpg"]["skin"]["score"]
    summary = subprocess.run([sys.executable, "-m", "skinscan", "scan", str(folder), "--summary"], check=True,
                             cwd=config.ROOT, capture_output=True, text=True, timeout=300).stdout
    counts = json.loads(summary)
    assert counts["images"] == 5 and sum(counts["verdicts"].values()) == 5, counts
    assert counts["verdicts"].get("not_skin", 0) >= 1


def test_scan_and_readable_output_of_an_uncertain_answer(tmp_path, uncertain_model_dir, uncertain_sample):
    """`skinscan scan --model` with a model copy whose gates make a real photo "uncertain" (conftest): the JSON line,
    the --summary count, and the readable output `skinscan predict` prints for it."""
    from skinscan.cli import format_result

    photo, expected = uncertain_sample
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(photo, folder / "photo.jpg")
    out = tmp_path / "scan.jsonl"
    base = [sys.executable, "-m", "skinscan", "scan", str(folder), "--model", str(uncertain_model_dir)]
    subprocess.run([*base, "--out", str(out)], check=True, cwd=config.ROOT, timeout=300)
    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["verdict"] == "uncertain" and line["candidates"] == expected["candidates"]
    summary = subprocess.run([*base, "--summary"], check=True, cwd=config.ROOT, capture_output=True, text=True,
                             timeout=300).stdout
    assert json.loads(summary) == {"images": 1, "verdicts": {"uncertain": 1}}
    text = format_result("photo.jpg", line)
    a, b = line["candidates"]
    assert "not sure" in text and f"{a['name']} ({a['probability']:.0%}) or {b['name']} ({b['probability']:.0%})" in text
    assert "most likely" not in text.lower() and "doctor or pharmacist" in text
