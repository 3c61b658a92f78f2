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

from skinscan import config, procs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--api-port", type=int, default=3000)
    ap.add_argument("--ui-port", type=int, default=8501)
    args = ap.parse_args(argv)
    if not (config.MODEL_DIR / "model.tflite").exists():
        print(f"no model.tflite in {config.MODEL_DIR}: run `make train` (or `make tflite` for an existing model.keras)",
              file=sys.stderr)
        return 1
    api_url = f"http://{args.host}:{args.api_port}"
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` stops both servers too (via finally)
    api = subprocess.Popen(procs.api_command(args.api_port, args.host), start_new_session=True)
    ui = subprocess.Popen(procs.ui_command(args.ui_port, args.host), env={**os.environ, "SKINSCAN_API_URL": api_url},
                          start_new_session=True)
    servers = [api, ui]
    try:
        print(f"starting the API at {api_url} (loading the model) ...", flush=True)
        if not procs.wait_ready(f"{api_url}/readyz", api, 300):
            print("the API did not become ready; see its log above", file=sys.stderr)
            return 1
        procs.wait_ready(f"http://{args.host}:{args.ui_port}/_stcore/health", ui, 60)
        print(f"\n  skinscan API: {api_url}   (docs: {api_url}/docs, try: curl -F image=@photo.jpg {api_url}/predict)"
              f"\n  skinscan UI:  http://{args.host}:{args.ui_port}\n\nCtrl-C stops both.", flush=True)
        while all(p.poll() is None for p in servers):
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in servers:
            procs.stop(p)


if __name__ == "__main__":
    sys.exit(main())
