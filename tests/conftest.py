"""Shared fixtures: real data paths (skip when absent), the shipped model, a real `bentoml serve` on loopback."""
from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from skinscan import config, procs
from skinscan.procs import free_port  # noqa: F401  (used by UI tests)

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (config.DATA_ROOT / "skin8" / "train").is_dir():
        pytest.skip(f"real data not found at {config.DATA_ROOT} (set SKINSCAN_DATA)")
    return config.DATA_ROOT


@pytest.fixture(scope="session")
def model_dir() -> Path:
    if not (config.MODEL_DIR / "model.keras").exists():
        pytest.fail(f"no shipped model in {config.MODEL_DIR}: run `make train`")
    return config.MODEL_DIR


@pytest.fixture(scope="session")
def pipeline(model_dir):
    from skinscan.pipeline import Pipeline

    return Pipeline(model_dir)


UNCERTAIN_CONFIDENT = 0.9999  # gates.json "unknown"."confident" of the copied model below


@pytest.fixture(scope="session")
def uncertain_model_dir(model_dir, tmp_path_factory) -> Path:
    """A copy of the shipped model (without model.keras) whose gates.json names a disease only at a 9-way probability
    of UNCERTAIN_CONFIDENT: a real photo of the 8 that is not unknown comes back "uncertain"."""
    out = tmp_path_factory.mktemp("uncertain") / model_dir.name
    shutil.copytree(model_dir, out, ignore=shutil.ignore_patterns("model.keras"))
    gates = json.loads((out / "gates.json").read_text())
    gates["unknown"]["confident"] = UNCERTAIN_CONFIDENT
    (out / "gates.json").write_text(json.dumps(gates, indent=2))
    return out


@pytest.fixture(scope="session")
def uncertain_sample(uncertain_model_dir, data_root) -> tuple[Path, dict]:
    """The first of the first 8 shingles photos (sorted) that the copied model answers "uncertain", and its result."""
    from skinscan.pipeline import Pipeline

    photos = sorted((data_root / "skin8" / "train" / "shingles").iterdir())[:8]
    results = Pipeline(uncertain_model_dir).run_batch([p.read_bytes() for p in photos])
    for path, result in zip(photos, results):
        if isinstance(result, dict) and result["verdict"] == "uncertain":
            return path, result
    pytest.fail(f"none of {len(photos)} shingles photos is 'uncertain' at confident={UNCERTAIN_CONFIDENT}: "
                f"{[getattr(r, 'code', None) or r['verdict'] for r in results]}")


@pytest.fixture(scope="session")
def api_url(model_dir):
    """A real `bentoml serve service.service:SkinScan` on a random loopback port, for the whole session."""
    port = procs.free_port()
    proc = start_server(procs.api_command(port), f"http://127.0.0.1:{port}/readyz", "api")
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


def start_server(cmd: list[str], ready_url: str, name: str, timeout: float = 240, env=None):
    """Start a server for a test; its output goes to tests/artifacts/<name>.log."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return procs.start(cmd, ready_url, ARTIFACTS / f"{name}.log", timeout, env)


stop_server = procs.stop


DROP = "drop"  # a scripted answer: close the connection without answering (a server that died mid-request)


class Scripted(http.server.ThreadingHTTPServer):
    """A small HTTP server on loopback for answers the real API cannot be made to give on demand (503 with
    Retry-After, a 500 page, a non-JSON 200, a hang, a dropped connection).

    Each request gets the next (status, headers, body, delay) of ``routes[path]`` (or of ``script`` for other
    paths); the last entry repeats. ``times`` records when requests came."""

    def __init__(self, script: list | None = None, routes: dict | None = None):
        self.script, self.routes, self.times = list(script or [(404, {}, b"", 0)]), dict(routes or {}), []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def handle_one(self):
                server = self.server
                server.times.append(time.monotonic())
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                queue = server.routes.get(self.path.split("?")[0], server.script)
                answer = queue.pop(0) if len(queue) > 1 else queue[0]
                if answer == DROP:
                    self.close_connection = True
                    return
                status, headers, body, delay = answer
                time.sleep(delay)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout tests)
                    pass

            do_GET = do_POST = handle_one

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.shutdown()
        self.server_close()
