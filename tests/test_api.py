"""The HTTP API: a real `bentoml serve` on loopback, real images, every bad-input case answers 4xx JSON."""
from __future__ import annotations

import io
import json
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image

from skinscan import config

pytestmark = pytest.mark.slow


def test_photo_path(cls: str, index: int = 0):
    """A test-split photo of ``cls`` (never trained on, per split.json), or None without data."""
    split = json.loads((config.MODEL_DIR / "split.json").read_text())["files"]
    rel = sorted(f for f, v in split.items() if v["split"] == "test" and f.split("/")[0] == cls)[index]
    path = config.DATA_ROOT / "skin8" / "train" / rel
    return path if path.exists() else None


test_photo_path.__test__ = False  # a helper, not a test


def real_photo(cls: str = "shingles", index: int = 0) -> bytes:
    path = test_photo_path(cls, index)
    if path is not None:
        return path.read_bytes()
    # no data: a generated skin-toned photo with a reddish patch
    rng = np.random.default_rng(0)
    img = np.full((300, 300, 3), (205, 160, 140), np.uint8) + rng.integers(0, 20, (300, 300, 3), dtype=np.uint8)
    img[100:200, 100:200] = (190, 90, 90)
    return encode(img)


def encode(arr: np.ndarray, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def post(url, files=None, **kw):
    return requests.post(url, files=files, timeout=120, **kw)


def assert_error(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code, body
    assert len(body["error"]["message"]) > 10


def test_predict_result_shape(api_url):
    r = post(f"{api_url}/predict", files={"image": ("photo.jpg", real_photo(), "image/jpeg")})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["verdict"] in ("disease", "uncertain", "unknown")  # a test-split shingles photo is skin
    assert "shingles" in [d["id"] for d in res["differential"]], res["differential"]
    assert set(res) >= {"verdict", "disease", "candidates", "differential", "quality", "skin", "unknown", "info",
                        "model", "timings_ms", "disclaimer"}
    assert res["skin"]["is_skin"] is True  # a real shingles photo is skin
    assert len(res["differential"]) == 3
    probs = [d["probability"] for d in res["differential"]]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0001
    assert all(d["id"] in config.CLASS_IDS for d in res["differential"])
    if res["verdict"] == "disease":
        assert res["disease"] == res["differential"][0] and res["info"]["id"] == res["disease"]["id"]
    assert res["candidates"] == res["differential"][: {"disease": 1, "uncertain": 2}.get(res["verdict"], 0)]
    assert 0 <= res["unknown"]["confidence"] <= 1
    assert set(res["quality"]) == {"ok", "warnings", "metrics"}
    assert res["model"]["name"] == config.MODEL_NAME
    assert "not a medical diagnosis" in res["disclaimer"]


def bomb_png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


BAD_INPUTS = {
    "empty": (b"", 400, "empty"),
    "text": (b"this is not an image at all" * 10, 415, "not_an_image"),
    "truncated": (None, 422, "truncated"),
    "too_large": (b"\xff\xd8\xff" + b"\0" * (config.MAX_UPLOAD_BYTES + 10), 413, "too_large"),
    "too_many_pixels": (None, 413, "too_many_pixels"),
    "bomb": (None, 413, "decompression_bomb"),
    "gif": (None, 415, "unsupported_format"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_image_is_4xx_json(api_url, case):
    data, status, code = BAD_INPUTS[case]
    if case == "truncated":
        full = real_photo()
        data = full[: len(full) // 2]
    elif case == "too_many_pixels":
        data = bomb_png(8000, 6000)
    elif case == "bomb":
        data = bomb_png(30000, 30000)
    elif case == "gif":
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), "red").save(buf, "GIF")
        data = buf.getvalue()
    resp = post(f"{api_url}/predict", files={"image": ("x.jpg", data, "image/jpeg")})
    assert_error(resp, status, code)


def test_request_shape_errors(api_url):
    photo = real_photo()
    assert_error(post(f"{api_url}/predict", files={"file": ("x.jpg", photo, "image/jpeg")}), 400, "missing_field")
    assert_error(post(f"{api_url}/predict", data={"image": "not a file"}, files={"other": ("a", b"b")}), 400, "not_a_file")
    assert_error(requests.post(f"{api_url}/predict", json={"image": "x"}, timeout=30), 415, "unsupported_media_type")
    assert_error(requests.post(f"{api_url}/predict", data=photo, headers={"Content-Type": "image/jpeg"}, timeout=30),
                 415, "unsupported_media_type")
    garbage = requests.post(f"{api_url}/predict", data=b"--xyz\r\ngarbage",
                            headers={"Content-Type": "multipart/form-data; boundary=xyz"}, timeout=30)
    assert 400 <= garbage.status_code < 500 and "error" in garbage.json()
    two = [("image", ("a.jpg", photo, "image/jpeg")), ("image", ("b.jpg", photo, "image/jpeg"))]
    assert_error(post(f"{api_url}/predict", files=two), 400, "too_many_files")


def test_batch_with_one_broken_file(api_url):
    files = [("image", ("a.jpg", real_photo("shingles"), "image/jpeg")),
             ("image", ("broken.jpg", b"garbage bytes", "image/jpeg")),
             ("image", ("c.jpg", real_photo("nail_fungus"), "image/jpeg"))]
    r = post(f"{api_url}/predict_batch", files=files)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out) == 3
    single = post(f"{api_url}/predict", files={"image": ("broken.jpg", b"garbage bytes", "image/jpeg")}).json()
    assert out[1] == single == {"error": {"code": "not_an_image", "message": single["error"]["message"]}}
    assert "not an image" in out[1]["error"]["message"]
    assert out[0]["verdict"] in ("disease", "uncertain", "unknown") and "shingles" in [d["id"] for d in out[0]["differential"]]
    assert out[2]["verdict"] in ("disease", "uncertain", "unknown") and "nail_fungus" in [d["id"] for d in out[2]["differential"]]


def test_diseases(api_url):
    r = requests.get(f"{api_url}/diseases", timeout=30)
    assert r.status_code == 200
    cards = r.json()
    assert [c["id"] for c in cards] == config.CLASS_IDS
    assert all(c["symptoms"] and c["urgency"] in ("self_care", "see_doctor", "urgent") for c in cards)


def metric(text: str, name: str, label: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def dark_photo() -> bytes:
    rgb = np.asarray(Image.open(io.BytesIO(real_photo())).convert("RGB"), dtype=np.float32)
    return encode((rgb * 0.3).astype(np.uint8))


def test_metrics_count_verdicts_and_errors(api_url):
    before = requests.get(f"{api_url}/metrics", timeout=30).text
    post(f"{api_url}/predict", files={"image": ("x.txt", b"not an image, really not" * 4, "text/plain")})
    r = post(f"{api_url}/predict", files={"image": ("x.jpg", dark_photo(), "image/jpeg")})
    assert "too_dark" in {w["code"] for w in r.json()["quality"]["warnings"]}
    after = requests.get(f"{api_url}/metrics", timeout=30).text
    assert metric(after, "skinscan_input_errors_total", 'code="not_an_image"') == \
        metric(before, "skinscan_input_errors_total", 'code="not_an_image"') + 1
    verdict = r.json()["verdict"]
    for v in ("disease", "uncertain", "unknown", "not_skin"):  # exactly one more for the dark photo's verdict, none for the others
        assert metric(after, "skinscan_verdicts_total", f'verdict="{v}"') == \
            metric(before, "skinscan_verdicts_total", f'verdict="{v}"') + (v == verdict)
    assert metric(after, "skinscan_quality_warnings_total", 'code="too_dark"') == \
        metric(before, "skinscan_quality_warnings_total", 'code="too_dark"') + 1


def non_skin_photo() -> bytes:
    path = config.DATA_ROOT / "non_skin" / "n04285008_sports_car.JPEG"
    if not path.exists():
        pytest.skip(f"no data at {path}")
    return path.read_bytes()


def test_non_skin_photo_is_not_skin(api_url):
    r = post(f"{api_url}/predict", files={"image": ("car.jpg", non_skin_photo(), "image/jpeg")})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["verdict"] == "not_skin" and res["skin"]["is_skin"] is False
    assert res["disease"] is None and res["differential"] == [] and res["info"] is None


def same_result(a: dict, b: dict) -> bool:
    """The same verdict and differential (ids exact, probabilities to 1e-3: batching may change float rounding)."""
    return a["verdict"] == b["verdict"] and [d["id"] for d in a["differential"]] == [d["id"] for d in b["differential"]] \
        and all(abs(x["probability"] - y["probability"]) < 1e-3 for x, y in zip(a["differential"], b["differential"]))


def test_batch_keeps_order_and_matches_single_predictions(api_url):
    grey = encode(np.full((300, 300, 3), 128, np.uint8))
    photos = [real_photo("shingles"), b"junk", real_photo("chickenpox"), grey, non_skin_photo(), real_photo("impetigo")]
    r = post(f"{api_url}/predict_batch", files=[("image", (f"p{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)])
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out) == len(photos)
    assert out[1]["error"]["code"] == "not_an_image" and out[3]["error"]["code"] == "unusable_image"
    assert out[4]["verdict"] == "not_skin"
    for i in (0, 2, 4, 5):
        single = post(f"{api_url}/predict", files={"image": ("p.jpg", photos[i], "image/jpeg")}).json()
        assert same_result(out[i], single), (i, out[i]["differential"], single["differential"])


def test_batch_of_only_bad_files_and_of_none(api_url):
    files = [("image", ("a.jpg", b"", "image/jpeg")), ("image", ("b.jpg", b"junk", "image/jpeg"))]
    r = post(f"{api_url}/predict_batch", files=files)
    assert r.status_code == 200 and [e["error"]["code"] for e in r.json()] == ["empty", "not_an_image"]
    assert_error(post(f"{api_url}/predict_batch", files={"note": ("n.txt", b"x", "text/plain")}), 400, "missing_field")
    too_many = [("image", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(config.MAX_BATCH_FILES + 1)]
    assert_error(post(f"{api_url}/predict_batch", files=too_many), 400, "too_many_files")
    exactly = [("image", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(config.MAX_BATCH_FILES)]
    r = post(f"{api_url}/predict_batch", files=exactly)
    assert r.status_code == 200 and len(r.json()) == config.MAX_BATCH_FILES


def test_concurrent_requests_each_get_their_own_answer(api_url):
    """16 requests at once, 4 different photos: every answer is 200 and is the answer for its own photo."""
    photos = [real_photo("shingles"), real_photo("nail_fungus"), non_skin_photo(), real_photo("chickenpox")]
    alone = [post(f"{api_url}/predict", files={"image": ("p.jpg", p, "image/jpeg")}).json() for p in photos]
    jobs = [i % len(photos) for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: post(f"{api_url}/predict", files={"image": ("p.jpg", photos[i], "image/jpeg")}),
                                jobs))
    assert [a.status_code for a in answers] == [200] * len(jobs)
    for i, a in zip(jobs, answers):
        assert same_result(a.json(), alone[i]), (i, a.json()["differential"], alone[i]["differential"])


def test_docs_and_health_stay_on(api_url):
    assert requests.get(f"{api_url}/livez", timeout=10).status_code == 200
    spec = requests.get(f"{api_url}/docs.json", timeout=10)
    assert spec.status_code == 200 and "/predict" in spec.json()["paths"]
    # BentoML's own index page and every local file it links pass the JSON-404 fallback (service.FallbackRoute
    # names BentoML's pages: a BentoML upgrade that adds one shows up here)
    index = requests.get(f"{api_url}/", timeout=10)
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    linked = set(re.findall(r'(?:src|href)="(?:\./|/)?((?:static_content|assets)/[^"?#]+)', index.text))
    assert linked, index.text[:500]
    for path in sorted(linked):
        assert requests.get(f"{api_url}/{path}", timeout=10).status_code == 200, path


def test_server_still_answers_after_everything(api_url):
    # runs last in this module: every bad request above must have left the server healthy
    assert requests.get(f"{api_url}/readyz", timeout=10).status_code == 200
    r = post(f"{api_url}/predict", files={"image": ("photo.jpg", real_photo(), "image/jpeg")})
    assert r.status_code == 200 and r.json()["verdict"] in ("disease", "uncertain", "unknown")
