"""A hostile and odd upload corpus against the real API: every case is answered, with a 200 or a 4xx JSON
``{"error": {"code", "message"}}`` (the expected status and code pinned per case), never a 5xx, never a reset
connection. Uploads go through three clients: requests, Python's urllib (writes the whole body before it reads
the answer) and raw http.client chunked transfer."""
from __future__ import annotations

import http.client
import io
import json
import socket
import struct
import urllib.error
import urllib.parse
import urllib.request
import zlib

import numpy as np
import pytest
import requests
from PIL import Image

from skinscan import config

pytestmark = pytest.mark.slow
TIMEOUT = 120
BIG = config.MAX_UPLOAD_BYTES + (2 << 20)  # a 12 MB body: over the /predict limit


# --- inputs ----------------------------------------------------------------------------------------------------
def photo() -> bytes:
    """A real shingles photo from the test split (falls back to the first file of the class)."""
    folder = config.DATA_ROOT / "skin8" / "train" / "shingles"
    if not folder.is_dir():
        pytest.skip(f"no data at {folder}")
    return sorted(folder.iterdir())[0].read_bytes()


def rgb() -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(photo())).convert("RGB"))


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def multipart(parts: list[tuple], boundary: str = "skinscanBoundary") -> tuple[bytes, str]:
    """(body, content type) for parts (name, filename or None, content type or None, data)."""
    out = io.BytesIO()
    for name, filename, ctype, data in parts:
        out.write(f"--{boundary}\r\n".encode())
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out.write(f"Content-Disposition: {disp}\r\n".encode())
        if ctype:
            out.write(f"Content-Type: {ctype}\r\n".encode())
        out.write(b"\r\n" + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


# --- clients: each returns (status, body bytes) or raises on a dropped connection -----------------------------
def via_requests(url, files=None, **kw):
    r = requests.post(url, files=files, timeout=TIMEOUT, **kw)
    return r.status_code, r.content


def via_urllib(url, body: bytes, content_type: str | None):
    req = urllib.request.Request(url, data=body, method="POST")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def via_chunked(url, body: bytes, content_type: str, chunk: int = 64 * 1024):
    """Transfer-Encoding: chunked, no Content-Length (as streaming clients send)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT)
    try:
        conn.request("POST", u.path, body=(body[i:i + chunk] for i in range(0, len(body), chunk)),
                     headers={"Content-Type": content_type}, encode_chunked=True)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def via_expect_continue(url, body: bytes, content_type: str):
    """``Expect: 100-continue`` (curl does it for big files): the body goes only after "100 Continue"."""
    u = urllib.parse.urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=TIMEOUT) as sock:
        sock.sendall((f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: {content_type}\r\n"
                      f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode())
        first = sock.recv(65536)
        if first.startswith(b"HTTP/1.1 100"):
            sock.sendall(body)
            first = first.split(b"\r\n\r\n", 1)[1] or sock.recv(65536)
        data = first
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(next(l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += sock.recv(65536)
        return int(head.split()[1]), rest


def image_file(data: bytes, name: str = "photo.jpg", ctype: str = "image/jpeg"):
    return {"image": (name, data, ctype)}


# --- the corpus: name -> (send(api_url) -> (status, body), expected status, expected error code or None) ---------
def cases() -> dict:
    c = {}

    def add(name, send, status, code=None):
        c[name] = (send, status, code)

    def files(make, **kw):  # inputs are built when the case runs
        return lambda url: via_requests(url + "/predict", image_file(make(), **kw))

    add("empty_file", lambda u: via_requests(u + "/predict", image_file(b"")), 400, "empty")
    add("text_file", files(lambda: b"just some text, not a photo\n" * 20, name="a.txt", ctype="text/plain"), 415, "not_an_image")
    add("truncated_jpeg", lambda u: via_requests(u + "/predict", image_file(photo()[: len(photo()) // 2])), 422,
        "truncated")
    add("truncated_png", lambda u: via_requests(u + "/predict", image_file(
        encode(Image.fromarray(rgb()), "PNG")[:5000], "a.png", "image/png")), 422, "truncated")
    add("first_16_bytes", lambda u: via_requests(u + "/predict", image_file(photo()[:16])), 422, "truncated")
    add("huge_dimensions_48mp", files(lambda: encode(Image.new("1", (8000, 6000)), "PNG", optimize=True), name="a.png"), 413,
        "too_many_pixels")
    add("decompression_bomb_400mp", files(lambda: png_header_only(20000, 20000), name="a.png"), 413, "decompression_bomb")
    add("gif", files(lambda: encode(Image.new("RGB", (64, 64), "red"), "GIF"), name="a.gif"), 415, "unsupported_format")
    add("tiff", files(lambda: encode(Image.new("RGB", (64, 64), "red"), "TIFF"), name="a.tif"), 415, "unsupported_format")
    add("random_bytes", files(lambda: np.random.default_rng(0).bytes(50_000)), 415, "not_an_image")
    add("file_over_10mb", files(lambda: b"\xff\xd8\xff" + b"\0" * (config.MAX_UPLOAD_BYTES + 10)), 413, "too_large")
    add("uniform_grey", files(lambda: encode(Image.new("RGB", (300, 300), (128, 128, 128)), "JPEG")), 422, "unusable_image")
    add("wrong_field_name", lambda u: via_requests(u + "/predict", {"file": ("a.jpg", photo(), "image/jpeg")}), 400,
        "missing_field")
    add("text_field_named_image", lambda u: via_requests(u + "/predict", {"other": ("a", b"b")},
                                                          data={"image": "not a file"}), 400, "not_a_file")
    add("two_files_to_predict", lambda u: via_requests(u + "/predict", [("image", ("a.jpg", photo(), "image/jpeg"))] * 2),
        400, "too_many_files")
    add("many_files_to_predict", lambda u: via_requests(u + "/predict", [("image", ("a.jpg", b"x", "image/jpeg"))] * 50),
        400, "too_many_files")
    add("33_files_to_batch", lambda u: via_requests(u + "/predict_batch",
                                                    [("image", ("a.jpg", b"x", "image/jpeg"))] * 33), 400, "too_many_files")
    add("batch_no_files", lambda u: via_urllib(u + "/predict_batch", *multipart([("note", None, None, b"hi")])), 400,
        "missing_field")
    add("batch_only_bad_files", lambda u: via_requests(u + "/predict_batch", [("image", ("a", b"", "image/jpeg")),
                                                                              ("image", ("b", b"junk", "image/jpeg"))]),
        200)
    add("json_body", lambda u: via_requests(u + "/predict", json={"image": "aGVsbG8="}), 415, "unsupported_media_type")
    add("raw_jpeg_body", lambda u: via_urllib(u + "/predict", photo(), "image/jpeg"), 415, "unsupported_media_type")
    add("no_content_type", lambda u: via_urllib(u + "/predict", photo(), None), 415, "unsupported_media_type")
    add("form_urlencoded", lambda u: via_requests(u + "/predict", data={"image": "x"}), 415, "unsupported_media_type")
    add("multipart_no_boundary", lambda u: via_urllib(u + "/predict", b"--x\r\n\r\n", "multipart/form-data"), 400,
        "malformed_request")
    add("multipart_garbage", lambda u: via_urllib(u + "/predict", b"--xyz\r\ngarbage",
                                                  "multipart/form-data; boundary=xyz"), 400, "missing_field")
    add("multipart_empty_body", lambda u: via_urllib(u + "/predict", b"", "multipart/form-data; boundary=xyz"), 400,
        "missing_field")
    add("part_without_name", lambda u: via_urllib(
        u + "/predict", b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n", "multipart/form-data; boundary=b"),
        400, "malformed_request")
    add("many_text_fields", lambda u: via_urllib(u + "/predict", *multipart([(f"f{i}", None, None, b"v") for i in range(200)])),
        400, "malformed_request")
    add("chunked_valid_photo", lambda u: via_chunked(u + "/predict", *multipart([("image", "a.jpg", "image/jpeg", photo())])),
        200)
    add("chunked_oversized", lambda u: via_chunked(u + "/predict", *multipart([("image", "a.jpg", "image/jpeg",
                                                                                 b"\0" * BIG)])), 413, "request_too_large")
    add("oversized_urllib", lambda u: via_urllib(u + "/predict", *multipart([("image", "a.jpg", "image/jpeg",
                                                                              b"\0" * BIG)])), 413, "request_too_large")
    add("oversized_requests", lambda u: via_requests(u + "/predict", image_file(b"\0" * BIG)), 413, "request_too_large")
    add("oversized_expect_continue", lambda u: via_expect_continue(u + "/predict", *multipart(
        [("image", "a.jpg", "image/jpeg", b"\0" * BIG)])), 413, "request_too_large")
    add("valid_expect_continue", lambda u: via_expect_continue(u + "/predict", *multipart(
        [("image", "a.jpg", "image/jpeg", photo())])), 200)
    add("oversized_non_multipart_urllib", lambda u: via_urllib(u + "/predict", b"\0" * BIG, "image/jpeg"), 415,
        "unsupported_media_type")
    add("get_predict", lambda u: (lambda r: (r.status_code, r.content))(requests.get(u + "/predict", timeout=30)), 405,
        "method_not_allowed")
    add("unknown_path", lambda u: (lambda r: (r.status_code, r.content))(requests.get(u + "/nope", timeout=30)), 404,
        "not_found")
    add("post_unknown_path", lambda u: (lambda r: (r.status_code, r.content))(requests.post(u + "/v1/predict", data=b"x",
                                                                                            timeout=30)), 404, "not_found")
    # odd but valid photos: 200
    add("png_named_jpg", files(lambda: encode(Image.fromarray(rgb()), "PNG"), name="photo.jpg", ctype="image/jpeg"), 200)
    add("part_type_text_plain", files(lambda: photo(), name="photo", ctype="text/plain"), 200)
    add("unicode_long_filename", files(lambda: photo(), name="фото-" + "x" * 2000 + ".jpg"), 200)
    add("webp", files(lambda: encode(Image.fromarray(rgb()), "WEBP", quality=90), name="a.webp", ctype="image/webp"), 200)
    add("bmp", files(lambda: encode(Image.fromarray(rgb()), "BMP"), name="a.bmp", ctype="image/bmp"), 200)
    add("grayscale", files(lambda: encode(Image.fromarray(rgb()).convert("L"), "JPEG")), 200)
    add("cmyk_jpeg", files(lambda: encode(Image.fromarray(rgb()).convert("CMYK"), "JPEG")), 200)
    add("rgba_png", files(lambda: encode(Image.fromarray(rgb()).convert("RGBA"), "PNG"), name="a.png"), 200)
    add("tiny_8x8", files(lambda: encode(Image.fromarray(rgb()).resize((8, 8)), "PNG"), name="a.png"), 422,
        "unusable_image")
    add("exif_rotated", lambda u: via_requests(u + "/predict", image_file(rotated_jpeg())), 200)
    return c


def rotated_jpeg() -> bytes:
    img = Image.fromarray(rgb())
    exif = img.getexif()
    exif[0x0112] = 6
    return encode(img, "JPEG", exif=exif.tobytes())


CASES = cases()


@pytest.mark.parametrize("name", list(CASES))
def test_every_upload_is_answered(api_url, name):
    send, status, code = CASES[name]
    try:
        got, body = send(api_url)
    except (ConnectionError, OSError, requests.ConnectionError) as err:
        pytest.fail(f"{name}: no answer, the connection dropped: {err!r}")
    assert got < 500, f"{name}: {got} {body[:300]!r}"
    payload = json.loads(body)
    if got >= 400:
        assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message"}, payload
        assert isinstance(payload["error"]["message"], str) and len(payload["error"]["message"]) > 10
    assert (got, payload["error"]["code"] if got >= 400 else None) == (status, code), payload
    if name == "batch_only_bad_files":
        assert [e["error"]["code"] for e in payload] == ["empty", "not_an_image"]
    elif got == 200:
        assert payload["verdict"] in ("disease", "uncertain", "unknown", "not_skin") and payload["model"]["name"] == config.MODEL_NAME


def test_corpus_size():
    assert len(CASES) >= 41


def test_api_still_healthy_after_the_corpus(api_url):
    assert requests.get(f"{api_url}/readyz", timeout=10).status_code == 200
    status, body = via_requests(api_url + "/predict", image_file(photo()))
    assert status == 200, body[:300]
