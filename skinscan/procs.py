"""Start and stop local server processes (used by the tests, the benchmark and `make serve`).

Every server is started by ``spawn``: in a process group of its own (a signal meant for the caller's group,
such as the terminal's Ctrl-C or SIGHUP or ``kill -- -PGID``, reaches only the caller, which then stops its
servers once, in order) and, on Linux, with a parent-death signal: if the caller dies without stopping them
(SIGKILL, a crash), the kernel sends the server SIGTERM. Nothing outlives the process that started it.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from skinscan import config

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None  # loaded before any fork
STOP_GRACE_S = 10  # SIGTERM, then SIGKILL after this long (the API needs ~6 s: its graceful timeout is 5 s)


class PortInUse(RuntimeError):
    def __init__(self, port: int):
        super().__init__(f"port {port} is in use: stop whatever listens there or choose another port")
        self.port = port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something already listens on ``host:port`` (a port in TIME_WAIT counts as free, as for servers)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def check_ports_free(*ports: int, host: str = "127.0.0.1") -> None:
    """PortInUse for the first busy port."""
    for port in ports:
        if port_in_use(port, host):
            raise PortInUse(port)


def api_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", "service.service:SkinScan", "--host", host, "--port", str(port),
            "--timeout-graceful-shutdown", "5"]


def ui_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", "ui/app.py", "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false"]


def _child_setup(parent_pid: int):
    def setup() -> None:  # runs in the child between fork and exec: no locks, no imports
        os.setpgid(0, 0)
        if _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os.kill(os.getpid(), signal.SIGTERM)
    return setup


def spawn(cmd: list[str], env: dict | None = None, **popen_kwargs) -> subprocess.Popen:
    """Start ``cmd`` (cwd: the repo) in its own process group, with SIGTERM when this process dies."""
    return subprocess.Popen(cmd, cwd=config.ROOT, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                            preexec_fn=_child_setup(os.getpid()), **popen_kwargs)


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
    """``spawn`` ``cmd`` (output to ``log`` if given) and wait until ``ready_url`` answers 200.

    PortInUse if ``ready_url``'s port already has a listener (it would answer for the wrong server)."""
    where = urllib.parse.urlsplit(ready_url)
    check_ports_free(where.port, host=where.hostname)
    out = open(log, "w") if log else None
    proc = spawn(cmd, env, stdout=out, stderr=subprocess.STDOUT if out else None)
    if not wait_ready(ready_url, proc, timeout):
        stop(proc)
        tail = log.read_text()[-3000:] if log else ""
        raise RuntimeError(f"{' '.join(cmd[:4])} did not answer {ready_url} within {timeout:.0f} s\n{tail}")
    return proc


def stop(*servers: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """Stop ``servers`` and every process they started (BentoML workers run in sessions of their own), all at
    once: SIGTERM to each, SIGKILL to any still running after ``grace`` seconds. Safe to call twice."""
    import psutil

    family = []
    for proc in servers:
        try:
            family += [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for p in family:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    for proc in servers:
        proc.wait()
