"""Shared fixtures: real data paths (skip when absent), the shipped model, a real `bentoml serve` on loopback."""
from __future__ import annotations

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
