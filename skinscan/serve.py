"""``make serve``: start the API (bentoml serve) and the Streamlit UI on loopback, print both URLs.

    .venv/bin/python -m skinscan.serve [--host 127.0.0.1] [--api-port 3000] [--ui-port 8501]

Both servers stop with the launcher, however it stops: Ctrl-C, SIGTERM (to it or to its whole process group,
e.g. `kill -- -PGID`, where make forwards a second SIGTERM), SIGHUP (the terminal closed; not under nohup) or
SIGKILL (the kernel's parent-death signal, see ``procs.spawn``). A busy port is refused before anything starts.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

from skinscan import config, procs

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop(Exception):
    """A stop signal arrived."""


def on_stop_signal(signum, frame) -> None:
    # The first signal starts the shutdown; any later one (make forwarding its SIGTERM, a second Ctrl-C, the
    # terminal's SIGHUP) is ignored so that it cannot interrupt the servers being stopped.
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    raise Stop(signal.Signals(signum).name)


def say(text: str, err: bool = False) -> None:
    try:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)
    except OSError:  # the terminal is gone (SIGHUP): stopping the servers matters more than the message
        pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--api-port", type=int, default=3000)
    ap.add_argument("--ui-port", type=int, default=8501)
    args = ap.parse_args(argv)
    if not (config.MODEL_DIR / "model.tflite").exists():
        say(f"no model.tflite in {config.MODEL_DIR}: run `make train` (or `make tflite` for an existing model.keras)",
            err=True)
        return 1
    try:
        procs.check_ports_free(args.api_port, args.ui_port, host=args.host)
    except procs.PortInUse as err:
        say(f"skinscan serve: {err} (e.g. make serve API_PORT=3001 UI_PORT=8502)", err=True)
        return 1
    api_url = f"http://{args.host}:{args.api_port}"
    ui_url = f"http://{args.host}:{args.ui_port}"
    servers = []
    for s in STOP_SIGNALS:
        if s == signal.SIGHUP and signal.getsignal(s) == signal.SIG_IGN:
            continue  # started under nohup: the caller asked the servers to outlive the terminal
        signal.signal(s, on_stop_signal)
    try:
        servers.append(procs.spawn(procs.api_command(args.api_port, args.host)))
        # Streamlit's stdout only repeats the URL printed below; and once the terminal is gone (SIGHUP) its
        # "Stopping..." print fails and aborts its own shutdown. Its log (stderr) stays on the terminal.
        servers.append(procs.spawn(procs.ui_command(args.ui_port, args.host), env={"SKINSCAN_API_URL": api_url},
                                   stdout=subprocess.DEVNULL))
        api, ui = servers
        say(f"starting the API at {api_url} (loading the model) ...")
        if not procs.wait_ready(f"{api_url}/readyz", api, 300):
            say("the API did not become ready; see its log above", err=True)
            return 1
        procs.wait_ready(f"{ui_url}/_stcore/health", ui, 60)
        say(f"\n  skinscan API: {api_url}   (docs: {api_url}/docs, try: curl -F image=@photo.jpg {api_url}/predict)"
            f"\n  skinscan UI:  {ui_url}\n\nCtrl-C stops both.")
        while all(p.poll() is None for p in servers):
            time.sleep(1)
        say("a server stopped on its own; stopping the other", err=True)
        return 1
    except Stop as stop:
        say(f"\n{stop}: stopping the API and the UI ...")
        return 0
    finally:
        for s in STOP_SIGNALS:  # a signal now would leave half-stopped servers: finish first
            signal.signal(s, signal.SIG_IGN)
        procs.stop(*servers)


if __name__ == "__main__":
    sys.exit(main())
