"""skinscan.client.Client: against the real API, a stopped one, and (for answers the real API cannot be made to
give on demand: 503 with Retry-After, a 500 page, a non-JSON 200, a hang) a small HTTP server on loopback."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from skinscan import config, procs
from skinscan.client import Client, ClientError
from conftest import Scripted, start_server, stop_server


def shingles_photo() -> bytes:
    folder = config.DATA_ROOT / "skin8" / "train" / "shingles"
    if not folder.is_dir():
        pytest.skip(f"no data at {folder}")
    return sorted(folder.iterdir())[0].read_bytes()


BUSY = (503, {"Content-Type": "application/json", "Retry-After": "1"},
        json.dumps({"error": {"code": "busy", "message": "skinscan is busy; try again in a few seconds."}}).encode(), 0)
CARDS = (200, {"Content-Type": "application/json"}, json.dumps([{"id": "shingles"}]).encode(), 0)


# --- the real API ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_api_calls_and_errors(api_url):
    client = Client(api_url)
    assert client.ready()
    result = client.predict(shingles_photo())
    assert result["verdict"] in ("disease", "uncertain", "unknown", "not_skin") and result["skin"]["is_skin"] is True
    assert [c["id"] for c in client.diseases()] == config.CLASS_IDS
    with pytest.raises(ClientError) as err:
        client.predict(b"this is not an image at all")
    assert (err.value.status, err.value.code) == (415, "not_an_image")
    with pytest.raises(ClientError) as err:
        client.predict(b"")
    assert (err.value.status, err.value.code) == (400, "empty")
    with pytest.raises(ClientError) as err:
        client.figure("nope")
    assert (err.value.status, err.value.code) == (404, "not_found")
    with pytest.raises(ClientError) as err:
        client.predict_batch([shingles_photo()] * (config.MAX_BATCH_FILES + 1))
    assert (err.value.status, err.value.code) == (400, "too_many_files")


@pytest.mark.slow
def test_real_api_timeout(api_url):
    client = Client(api_url, timeout=0.001, retries=0)
    with pytest.raises(ClientError) as err:
        client.predict(shingles_photo())
    assert err.value.code == "timeout" and err.value.status is None


def test_stopped_api_is_retried_then_unreachable():
    url = f"http://127.0.0.1:{procs.free_port()}"  # nothing listens: connection refused
    client = Client(url, retries=2, backoff=0.2)
    t0 = time.monotonic()
    with pytest.raises(ClientError) as err:
        client.diseases()
    took = time.monotonic() - t0
    assert err.value.code == "api_unreachable" and err.value.status is None and url in str(err.value)
    assert 0.6 <= took < 5, took  # waited 0.2 + 0.4 s between the 3 attempts
    assert client.ready() is False


@pytest.mark.slow
def test_a_stopped_real_api(model_dir):
    """A real API that is stopped after a first call: the next call fails with api_unreachable."""
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(procs.api_command(port), f"{url}/readyz", "api-stopped")
    client = Client(url, retries=1, backoff=0.1)
    try:
        assert client.diseases()
    finally:
        stop_server(proc)
    with pytest.raises(ClientError) as err:
        client.diseases()
    assert err.value.code == "api_unreachable"


def test_connection_error_retried_until_the_api_is_up():
    port = procs.free_port()
    late = subprocess.Popen([sys.executable, "-c", (
        "import http.server, time\ntime.sleep(1.0)\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.send_header('Content-Type', 'application/json'); "
        "self.send_header('Content-Length', '2'); self.end_headers(); self.wfile.write(b'[]')\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).handle_request()")])
    try:
        assert Client(f"http://127.0.0.1:{port}", retries=5, backoff=0.25).diseases() == []
    finally:
        late.wait(timeout=30)


def test_503_is_retried_honouring_retry_after():
    with Scripted([BUSY, BUSY, CARDS]) as server:
        assert Client(server.url, retries=3, backoff=0.01).diseases() == [{"id": "shingles"}]
        assert len(server.times) == 3
        gaps = [b - a for a, b in zip(server.times, server.times[1:])]
        assert all(g >= 0.95 for g in gaps), gaps  # Retry-After: 1, not the 0.01 s backoff


def test_503_retries_are_bounded():
    with Scripted([BUSY]) as server:
        with pytest.raises(ClientError) as err:
            Client(server.url, retries=2, max_wait=0.1).predict(b"x")
        assert (err.value.status, err.value.code) == (503, "busy") and "busy" in err.value.message
        assert len(server.times) == 3


def test_500_page_and_bad_responses():
    with Scripted([(500, {"Content-Type": "text/html"}, b"<h1>Internal Server Error</h1>", 0)]) as server:
        with pytest.raises(ClientError) as err:
            Client(server.url).model()
        assert (err.value.status, err.value.code) == (500, "server_error") and len(server.times) == 1  # no retry
    with Scripted([(200, {"Content-Type": "text/html"}, b"<html>a proxy page</html>", 0)]) as server:
        with pytest.raises(ClientError) as err:
            Client(server.url).diseases()
        assert err.value.code == "bad_response" and err.value.status == 200
    with Scripted([(200, {"Content-Type": "application/json"}, b"[1, 2]", 0)]) as server:
        with pytest.raises(ClientError) as err:
            Client(server.url).predict(b"x")
        assert err.value.code == "bad_response"
    with Scripted([(418, {}, b"", 0)]) as server:
        with pytest.raises(ClientError) as err:
            Client(server.url).diseases()
        assert (err.value.status, err.value.code) == (418, "http_418")


def test_hanging_api_times_out():
    with Scripted([(200, {}, b"[]", 3)]) as server:
        t0 = time.monotonic()
        with pytest.raises(ClientError) as err:
            Client(server.url, timeout=0.5).diseases()
        assert err.value.code == "timeout" and time.monotonic() - t0 < 2.5


def test_unreadable_file():
    with pytest.raises(ClientError) as err:
        Client("http://127.0.0.1:9").predict("/no/such/photo.jpg")
    assert err.value.code == "file_not_readable"


# --- skinscan predict (the command line client) ---------------------------------------------------------------
@pytest.mark.slow
def test_cli_predict(api_url, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(shingles_photo())
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"not an image")
    cmd = [sys.executable, "-m", "skinscan", "predict", str(photo), "--url", api_url, "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=config.ROOT)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["verdict"] in ("disease", "uncertain", "unknown", "not_skin") and result["skin"]["is_skin"] is True
    text = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=120, cwd=config.ROOT)
    assert text.returncode == 0 and "not a medical diagnosis" in text.stdout.lower()
    failed = subprocess.run([*cmd[:4], str(bad), "--url", api_url], capture_output=True, text=True, timeout=120,
                            cwd=config.ROOT)
    assert failed.returncode != 0 and "not an image" in (failed.stdout + failed.stderr).lower()
    down = subprocess.run([*cmd[:5], "--url", f"http://127.0.0.1:{procs.free_port()}"], capture_output=True,
                          text=True, timeout=120, cwd=config.ROOT)
    assert down.returncode != 0 and "not reachable" in (down.stdout + down.stderr)
