"""Start and stop local server processes (used by the tests, the benchmark and `make serve`)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from skinscan import config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", "service.service:SkinScan", "--host", host, "--port", str(port)]


def ui_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", "ui/app.py", "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false"]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def start(cmd: list[str], ready_url: str, log: Path | None = None, timeout: float = 240, env=None) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (output to ``log`` if given) and wait until ``ready_url`` answers 200."""
    out = open(log, "w") if log else None
    proc = subprocess.Popen(cmd, cwd=config.ROOT, stdout=out, stderr=subprocess.STDOUT if out else None,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    if not wait_ready(ready_url, proc, timeout):
        stop(proc)
        tail = log.read_text()[-3000:] if log else ""
        raise RuntimeError(f"{' '.join(cmd[:4])} did not answer {ready_url} within {timeout:.0f} s\n{tail}")
    return proc


def stop(proc: subprocess.Popen) -> None:
    """Stop ``proc`` and every process it started (BentoML workers run in sessions of their own)."""
    import psutil

    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=20)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()
