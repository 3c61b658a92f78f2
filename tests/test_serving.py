"""Serving on LiteRT: the export matches Keras, the API never loads TensorFlow, concurrent answers equal serial ones."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests

from skinscan import config

ROOT = Path(__file__).resolve().parent.parent


def test_litert_export_matches_keras_on_test_photos(model_dir, data_root):
    """model.tflite (what the API serves) and model.keras give the same argmax and logits within 1e-3."""
    from skinscan.classifier import Classifier, KerasClassifier
    from skinscan.decode import decode_image
    from skinscan.preprocess import to_model_input

    split = json.loads((model_dir / "split.json").read_text())
    files = sorted(f for f, v in split["files"].items() if v["split"] == "test")
    assert len(files) >= 32
    x = np.stack([to_model_input(decode_image((data_root / "skin8" / "train" / f).read_bytes())) for f in files])
    lite_logits, lite_emb = Classifier(model_dir).forward(x)
    keras = KerasClassifier(model_dir)
    keras_logits, keras_emb = (np.concatenate(a) for a in zip(*(keras.forward(x[i : i + 32])
                                                                  for i in range(0, len(x), 32))))
    labels = json.loads((model_dir / "labels.json").read_text())["labels"]
    assert lite_logits.shape == keras_logits.shape == (len(files), len(labels))
    assert lite_emb.shape == keras_emb.shape
    np.testing.assert_array_equal(lite_logits.argmax(1), keras_logits.argmax(1))
    assert np.abs(lite_logits - keras_logits).max() <= 1e-3
    assert np.abs(lite_emb - keras_emb).max() <= 1e-3


def test_serve_requirements_are_the_pinned_subset_without_tensorflow():
    def pins(path):
        return {re.sub(r"[-_.]+", "-", n).lower(): v for n, v in (
            line.split("#")[0].strip().split("==") for line in path.read_text().splitlines()
            if "==" in line.split("#")[0])}

    serve, main = pins(ROOT / "requirements-serve.txt"), pins(ROOT / "requirements.txt")
    assert {"bentoml", "ai-edge-litert", "opencv-python-headless", "pillow", "numpy", "fastapi"} <= set(serve)
    assert not {n for n in serve if n.startswith(("tensorflow", "keras", "tf-"))}
    for name, version in serve.items():
        assert main.get(name) == version, f"{name}: requirements-serve.txt pins {version}, requirements.txt {main.get(name)}"


def test_serving_path_imports_no_tensorflow(model_dir, data_root):
    """The import graph of the service module, the pipeline and the CLI, with a forward pass: no TensorFlow."""
    photo = sorted((data_root / "skin8" / "train" / "impetigo").iterdir())[0]
    code = ("import sys, service.service, skinscan.cli\n"
            "from skinscan.pipeline import Pipeline\n"
            f"r = Pipeline().run(open({str(photo)!r}, 'rb').read())\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
            "assert 'ai_edge_litert' in sys.modules and not bad, bad\n"
            "print(r['verdict'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def server_processes(api_url: str) -> list[psutil.Process]:
    """The process tree of the server listening on ``api_url``'s port."""
    port = int(api_url.rsplit(":", 1)[1])
    listeners = {c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port
                 and c.status == psutil.CONN_LISTEN and c.pid}
    assert listeners, f"nothing listens on {port}"
    procs = [psutil.Process(p) for p in listeners]
    root = next(p for p in procs if not ({a.pid for a in p.parents()} & listeners))
    return [root, *root.children(recursive=True)]


def test_api_processes_never_load_tensorflow(api_url):
    """The running API (every process of it) has LiteRT mapped and no TensorFlow library."""
    assert requests.get(f"{api_url}/readyz", timeout=30).status_code == 200
    maps = {p.pid: Path(f"/proc/{p.pid}/maps").read_text() for p in server_processes(api_url)}
    assert any("ai_edge_litert" in m for m in maps.values()), "the LiteRT interpreter is not loaded anywhere"
    for pid, m in maps.items():
        assert "libtensorflow" not in m and "_pywrap_tensorflow" not in m, f"process {pid} maps TensorFlow"


@pytest.mark.slow
def test_concurrent_answers_equal_one_by_one(api_url, data_root):
    """24 distinct real photos (3 per class) posted all at once get exactly the answers they get one by one."""
    photos = [p.read_bytes() for cls in config.CLASS_IDS
              for p in sorted((data_root / "skin8" / "train" / cls).iterdir())[:3]]
    assert len(set(photos)) >= 16

    def ask(data: bytes) -> str:
        r = requests.post(f"{api_url}/predict", files={"image": ("p.jpg", data, "image/jpeg")}, timeout=300)
        assert r.status_code == 200, r.text
        return json.dumps({k: v for k, v in r.json().items() if k != "timings_ms"}, sort_keys=True)

    serial = [ask(p) for p in photos]
    with ThreadPoolExecutor(len(photos)) as pool:
        for _ in range(2):
            concurrent = list(pool.map(ask, photos))
            assert concurrent == serial
    assert len({json.loads(a)["differential"][0]["probability"] for a in serial}) > 1  # distinct photos, distinct answers


def test_large_jpeg_decoded_at_half_size_keeps_quality_figures(data_root):
    """A phone-sized JPEG is decoded at half size; its reported size, other warnings and JPEG-blocking verdict hold."""
    import io

    import cv2
    from PIL import Image

    from skinscan import quality
    from skinscan.decode import decode_upload

    rgb = np.array(Image.open(sorted((data_root / "skin8" / "train" / "ringworm").iterdir())[0]).convert("RGB"))
    f = 2 * config.DECODE_MIN_SIDE * 1.5 / min(rgb.shape[:2])
    big = cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    verdicts = {}
    for q in (92, 6):
        buf = io.BytesIO()
        Image.fromarray(big).save(buf, "JPEG", quality=q)
        d = decode_upload(buf.getvalue())
        assert d.jpeg_block == 4 and d.rgb.shape[:2] == ((big.shape[0] + 1) // 2, (big.shape[1] + 1) // 2)
        assert (d.full_height, d.full_width) == big.shape[:2]
        report = quality.check_quality(d.rgb, None, d.jpeg_block, (d.full_height, d.full_width))
        assert (report["metrics"]["height"], report["metrics"]["width"]) == big.shape[:2]
        full = quality.check_quality(np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
        assert [w["code"] for w in report["warnings"] if w["code"] != "compressed"] == \
            [w["code"] for w in full["warnings"] if w["code"] != "compressed"]
        verdicts[q] = "compressed" in [w["code"] for w in report["warnings"]]
    assert verdicts == {92: False, 6: True}
    small = decode_upload(cv2.imencode(".jpg", rgb[:400, :400])[1].tobytes())
    assert small.jpeg_block == 8  # small photos are decoded as they are
