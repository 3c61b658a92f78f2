"""``make serve``: start the API (bentoml serve) and the Streamlit UI on loopback, print both URLs.

    .venv/bin/python -m skinscan.serve [--host 127.0.0.1] [--api-port 3000] [--ui-port 8501]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request

from skinscan import config


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--api-port", type=int, default=3000)
    ap.add_argument("--ui-port", type=int, default=8501)
    args = ap.parse_args(argv)
    if not (config.MODEL_DIR / "model.keras").exists():
        print(f"no model in {config.MODEL_DIR}: run `make train` first", file=sys.stderr)
        return 1
    api_url = f"http://{args.host}:{args.api_port}"
    api = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "service.service:SkinScan",
                            "--host", args.host, "--port", str(args.api_port)], start_new_session=True)
    ui = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "ui/app.py", "--server.address", args.host,
                           "--server.port", str(args.ui_port), "--server.headless", "true",
                           "--browser.gatherUsageStats", "false"],
                          env={**os.environ, "SKINSCAN_API_URL": api_url}, start_new_session=True)
    procs = [api, ui]
    try:
        print(f"starting the API at {api_url} (loading the model) ...", flush=True)
        if not wait_ready(f"{api_url}/readyz", api):
            print("the API did not become ready; see its log above", file=sys.stderr)
            return 1
        wait_ready(f"http://{args.host}:{args.ui_port}/_stcore/health", ui, 60)
        print(f"\n  skinscan API: {api_url}   (docs: {api_url}/docs, try: curl -F image=@photo.jpg {api_url}/predict)"
              f"\n  skinscan UI:  http://{args.host}:{args.ui_port}\n\nCtrl-C stops both.", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
