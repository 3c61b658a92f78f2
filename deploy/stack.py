"""Run the API and UI images with podman the way compose.yaml runs them, on random loopback ports.

The user, read-only root fs, tmpfs, environment, dropped capabilities, security options and the API's healthcheck
are read from compose.yaml itself, so what runs here is what compose (and k8s, which sets the same) asks for.
Containers and the network carry the label ``skinscan.stack=<name>`` so a run can prove it left nothing behind.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

import yaml

from deploy.images import podman
from skinscan import config, procs

LABEL = "skinscan.stack"
API_PORT, UI_PORT = 3000, 8501  # inside the containers, as in compose.yaml and k8s


def compose_service(name: str) -> dict:
    return yaml.safe_load((config.ROOT / "compose.yaml").read_text())["services"][name]


def run_args(service: dict) -> list[str]:
    """compose.yaml's runtime settings of one service as ``podman run`` flags."""
    args = []
    if service.get("user"):
        args += ["--user", str(service["user"])]
    if service.get("read_only"):
        args += ["--read-only", "--read-only-tmpfs=false"]  # only compose's tmpfs mounts are writable
    for mount in service.get("tmpfs") or []:
        args += ["--tmpfs", mount]
    env = service.get("environment") or {}
    for key, value in (env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)):
        args += ["--env", f"{key}={value}"]
    for cap in service.get("cap_drop") or []:
        args += ["--cap-drop", cap]
    for opt in service.get("security_opt") or []:
        args += ["--security-opt", opt]
    check = service.get("healthcheck") or {}
    if check.get("test"):
        test = check["test"]
        args += ["--health-cmd", json.dumps(test[1:]) if test[0] == "CMD" else test[-1]]
    return args


def http_status(url: str, timeout: float = 2) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


@dataclass
class Stack:
    """One API container and one UI container on a network of their own (the UI finds the API as ``api``)."""
    name: str = field(default_factory=lambda: f"skinscan-test-{uuid.uuid4().hex[:8]}")
    api_port: int = field(default_factory=procs.free_port)
    ui_port: int = field(default_factory=procs.free_port)
    started: list = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"{self.name}-api"

    @property
    def ui(self) -> str:
        return f"{self.name}-ui"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def create_network(self) -> None:
        podman("network", "create", "--label", f"{LABEL}={self.name}", self.name)

    def run(self, container: str, image: str, service: str, host_port: int, port: int, alias: str) -> None:
        podman("run", "--detach", "--name", container, "--label", f"{LABEL}={self.name}", "--network", self.name,
               "--network-alias", alias, "--publish", f"127.0.0.1:{host_port}:{port}",
               *run_args(compose_service(service)), image)
        self.started.append(container)

    def wait(self, container: str, url: str, timeout: float) -> float:
        """Seconds until ``url`` answers 200 (each try times out after 2 s: the first /readyz can hang)."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            if http_status(url) == 200:
                return time.time() - t0
            state = json.loads(podman("inspect", container).stdout)[0]["State"]
            if not state["Running"]:
                raise RuntimeError(f"{container} exited ({state['ExitCode']}):\n{self.logs(container)}")
            time.sleep(0.5)
        raise RuntimeError(f"{url} not ready after {timeout:.0f} s:\n{self.logs(container)}")

    def start_api(self, timeout: float = 300) -> float:
        """Start the API container; seconds from ``podman run`` to /readyz answering 200."""
        t0 = time.time()
        self.run(self.api, config.API_IMAGE, "api", self.api_port, API_PORT, "api")
        self.wait(self.api, f"{self.api_url}/readyz", timeout)
        return time.time() - t0

    def start_ui(self, timeout: float = 120) -> float:
        t0 = time.time()
        self.run(self.ui, config.UI_IMAGE, "ui", self.ui_port, UI_PORT, "ui")
        self.wait(self.ui, f"{self.ui_url}/_stcore/health", timeout)
        return time.time() - t0

    def logs(self, container: str) -> str:
        out = podman("logs", container, check=False)
        return (out.stdout + out.stderr)[-4000:]

    def exec(self, container: str, *cmd: str, check: bool = False):
        return podman("exec", container, *cmd, check=check)

    def stop(self, timeout: int = 30) -> dict[str, float]:
        """Stop (SIGTERM, SIGKILL after ``timeout`` s like k8s' grace period), remove; seconds per container."""
        seconds = {}
        for container in reversed(self.started):
            t0 = time.time()
            podman("stop", "--time", str(timeout), container, check=False)
            seconds[container] = round(time.time() - t0, 1)
            podman("rm", "--force", container, check=False)
        self.started.clear()
        podman("network", "rm", "--force", self.name, check=False)
        return seconds

    def leftovers(self) -> list[str]:
        """Containers (any state) and networks of this stack that still exist."""
        ps = podman("ps", "--all", "--filter", f"label={LABEL}={self.name}", "--format", "{{.Names}}").stdout.split()
        nets = [n for n in podman("network", "ls", "--format", "{{.Name}}").stdout.split() if n == self.name]
        return ps + nets


def tree_rss_mb(container: str) -> float:
    """Resident memory of all the container's processes, MiB (as bench/http.py measures the API outside)."""
    import psutil

    pid = int(podman("inspect", "--format", "{{.State.Pid}}", container).stdout)
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


def cgroup_memory_mb(container: str) -> float:
    """The container's memory as its cgroup counts it (``podman stats``: what a memory limit is enforced on), MiB."""
    usage = json.loads(podman("stats", "--no-stream", "--no-reset", "--format", "json", container).stdout)[0]
    value = usage["mem_usage"].split("/")[0].strip()
    units = {"kB": 1e3, "MB": 1e6, "GB": 1e9, "B": 1}
    number, unit = next((value[: -len(u)], u) for u in units if value.endswith(u))
    return float(number) * units[unit] / 2**20
