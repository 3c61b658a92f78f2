"""Process lifecycle, for real: however `make serve` stops (Ctrl-C, SIGTERM to the launcher or to its whole
process group, the terminal closing, SIGKILL of the launcher), no skinscan process is left and both ports are
free within 30 s; a busy port is refused up front with a message naming it."""
from __future__ import annotations

import fcntl
import os
import pty
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import termios
import time

import psutil
import requests
import pytest

from skinscan import config, procs

pytestmark = pytest.mark.slow

MAKE = shutil.which("make")
STOP_WITHIN_S = 30
MAKE_SERVE = [MAKE, "-o", ".venv/.installed-stamp", "serve"]  # -o: never reinstall the venv from a test


def family(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def command(p: psutil.Process, words: int | None = None) -> str:
    """The process's command line; "" once it has exited or is a zombie (a short-lived child can be caught either way)."""
    try:
        return " ".join(p.cmdline()[:words])
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""


def launcher_of(procs_: list[psutil.Process]) -> psutil.Process:
    return next(p for p in procs_ if "skinscan.serve" in command(p))


def wait_started(proc, api_port: int, ui_port: int, read_output, until_ready: bool, timeout: float = 300):
    """Until both ports listen and the API's two BentoML workers exist (or, with ``until_ready``, until the
    launcher printed both URLs: the model is loaded). The launcher's whole process tree then."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = read_output()  # also keeps a terminal's buffer drained
        assert proc.poll() is None, text[-3000:]
        tree = family(proc)
        workers = [p for p in tree if "_bentoml_impl.worker.service" in command(p)]
        started = procs.port_in_use(api_port) and procs.port_in_use(ui_port) and len(workers) >= 2
        if started and (not until_ready or "skinscan UI:" in text):
            return tree
        time.sleep(0.5)
    raise AssertionError(f"make serve did not start within {timeout} s:\n{read_output()[-3000:]}")


def running(p: psutil.Process) -> bool:
    """Alive and not a zombie (a dead child whose reparented exit status nobody collected yet)."""
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_all_stopped(tree: list[psutil.Process], api_port: int, ui_port: int, t0: float) -> float:
    while any(running(p) for p in tree) and time.time() - t0 < STOP_WITHIN_S:
        time.sleep(0.2)
    left = [(p.pid, command(p, 4)) for p in tree if running(p)]
    for p in tree:  # clean up before failing
        if running(p):
            p.kill()
    assert not left, f"still running {STOP_WITHIN_S} s after the stop: {left}"
    while procs.port_in_use(api_port) or procs.port_in_use(ui_port):
        assert time.time() - t0 < STOP_WITHIN_S, "a port is still in use"
        time.sleep(0.2)
    return time.time() - t0


def make_serve(tmp_path):
    api_port, ui_port = procs.free_port(), procs.free_port()
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([*MAKE_SERVE, f"API_PORT={api_port}", f"UI_PORT={ui_port}"], cwd=config.ROOT,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)  # its own process group, as a terminal's job would be
    return proc, api_port, ui_port, log.read_text


STOPS = {
    "ctrl_c": lambda proc, tree: os.killpg(proc.pid, signal.SIGINT),  # the terminal sends it to the whole group
    "sigterm_launcher": lambda proc, tree: launcher_of(tree).send_signal(signal.SIGTERM),
    "sigterm_group": lambda proc, tree: os.killpg(proc.pid, signal.SIGTERM),  # make forwards a second one
    "sighup_group": lambda proc, tree: os.killpg(proc.pid, signal.SIGHUP),
    "sigkill_launcher": lambda proc, tree: launcher_of(tree).kill(),  # only the parent-death signal is left
}


@pytest.mark.parametrize("how", list(STOPS))
def test_make_serve_stops_everything(tmp_path, how):
    proc, api_port, ui_port, output = make_serve(tmp_path)
    try:
        tree = wait_started(proc, api_port, ui_port, output, until_ready=False)
        assert len(tree) >= 5  # launcher, bentoml, its 2 workers, streamlit
        t0 = time.time()
        STOPS[how](proc, tree)
        took = assert_all_stopped(tree, api_port, ui_port, t0)
        print(f"{how}: everything stopped in {took:.1f} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("nohup", [False, True])
def test_closing_the_terminal_stops_a_ready_server(tmp_path, nohup):
    """`make serve` on a real pseudo-terminal, model loaded and both URLs printed; then the terminal closes. Under
    nohup (SIGHUP ignored, as `nohup` sets it) the launcher itself leads the terminal's session, so it is the process
    the hang-up reaches: the servers outlive the terminal until a SIGTERM."""
    api_port, ui_port = procs.free_port(), procs.free_port()
    master, slave = pty.openpty()

    def take_terminal():  # the session leader (a shell) gets the pty as its controlling terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)  # a new terminal's shell, even when pytest runs under nohup

    if nohup:
        launcher = [sys.executable, "-m", "skinscan.serve", "--api-port", str(api_port), "--ui-port", str(ui_port)]
        shell = f"trap '' HUP; exec {shlex.join(launcher)}"
    else:
        shell = f"{shlex.join([*MAKE_SERVE, f'API_PORT={api_port}', f'UI_PORT={ui_port}'])}; exit $?"
    proc = subprocess.Popen(["bash", "-c", shell], cwd=config.ROOT,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True, preexec_fn=take_terminal)
    os.close(slave)
    seen = bytearray()

    def output() -> str:
        while True:
            try:
                if not select.select([master], [], [], 0)[0]:
                    break
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen.extend(chunk)
        return seen.decode(errors="replace")

    try:
        tree = wait_started(proc, api_port, ui_port, output, until_ready=True)
        t0 = time.time()
        os.close(master)  # the terminal window closes: the kernel hangs up the session
        master = None
        if nohup:
            time.sleep(5)
            assert all(running(p) for p in tree), [(p.pid, command(p, 4)) for p in tree if not running(p)]
            assert requests.get(f"http://127.0.0.1:{api_port}/readyz", timeout=10).status_code == 200
            t0 = time.time()
            os.killpg(proc.pid, signal.SIGTERM)
        took = assert_all_stopped(tree, api_port, ui_port, t0)
        print(f"terminal closed{' (nohup), then SIGTERM' if nohup else ''}: everything stopped in {took:.1f} s")
    finally:
        if master is not None:
            os.close(master)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("busy", ["api", "ui"])
def test_make_serve_refuses_a_busy_port(tmp_path, busy):
    ports = {"api": procs.free_port(), "ui": procs.free_port()}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[busy]))
        holder.listen()
        t0 = time.time()
        out = subprocess.run([*MAKE_SERVE, f"API_PORT={ports['api']}", f"UI_PORT={ports['ui']}"], cwd=config.ROOT,
                             capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert f"port {ports[busy]} is in use" in out.stdout + out.stderr
    assert time.time() - t0 < 60
    assert not procs.port_in_use(ports["api" if busy == "ui" else "ui"])  # nothing was started on the other


def test_procs_start_refuses_a_busy_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(procs.PortInUse, match=f"port {port} is in use"):
            procs.start(procs.api_command(port), f"http://127.0.0.1:{port}/readyz", timeout=5)


def test_a_spawned_server_dies_with_its_parent(tmp_path):
    """procs.spawn's parent-death signal: the parent is SIGKILLed, its child still gets SIGTERM (Linux)."""
    if not procs._LIBC:
        pytest.skip("parent-death signal is Linux only")
    script = ("import subprocess, sys, time; sys.path.insert(0, '.'); from skinscan import procs; "
              "p = procs.spawn([sys.executable, '-c', 'import time; time.sleep(600)']); print(p.pid, flush=True); "
              "time.sleep(600)")
    parent = subprocess.Popen([os.sys.executable, "-c", script], cwd=config.ROOT, stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(parent.stdout.readline()))
    parent.kill()
    parent.wait()
    child.wait(timeout=10)
    assert not child.is_running()
