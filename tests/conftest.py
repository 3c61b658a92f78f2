"""Shared fixtures: real data paths (skip when absent), the shipped model, a real `bentoml serve` on loopback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from skinscan import config

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def start_server(cmd: list[str], ready_url: str, name: str, timeout: float = 180, env=None):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"{name}.log"
    fh = open(log, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                            start_new_session=True)
    try:
        wait_http(ready_url, proc, timeout, log)
    except Exception:
        stop_server(proc)
        raise
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


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


@pytest.fixture(scope="session")
def api_url(model_dir):
    """A real `bentoml serve service.service:SkinScan` on a random loopback port, for the whole session."""
    port = free_port()
    cmd = [sys.executable, "-m", "bentoml", "serve", "service.service:SkinScan", "--host", "127.0.0.1",
           "--port", str(port)]
    proc = start_server(cmd, f"http://127.0.0.1:{port}/readyz", "api", timeout=240)
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)
