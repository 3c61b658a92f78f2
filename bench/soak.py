"""A bounded soak of the real API: requests, errors and memory over time, as JSON.

    .venv/bin/python -m bench.soak [--minutes 5] [--concurrency 32] [--every 5] [--out bench/results/soak.json]

Starts ``bentoml serve service.service:SkinScan`` on loopback, keeps ``--concurrency`` clients posting real photos
to ``POST /predict`` for ``--minutes``, and samples every ``--every`` seconds: requests and errors so far and the
memory of the server as a container is charged for it, PSS (``memory_full_info().pss``) summed over all its
processes. ``pss_growth_second_half`` is the trend (least-squares line) of PSS over the second half of the run,
end vs middle: a leak shows as steady growth there, while start-up and warm-up growth fall in the first half. The k8s memory requests and limits
(``k8s/overlays/*/api-resources.yaml``) are sized from ``pss_mb_peak``.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np

from bench.http import HttpClient, sample_images, tree_memory_mb, tree_pss_mb
from skinscan import config, procs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--every", type=float, default=5.0, help="seconds between memory samples")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--out", default="bench/results/soak.json")
    args = ap.parse_args(argv)
    images = sample_images(args.images)
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    server = procs.start(procs.api_command(port), f"{url}/readyz", Path("bench/results/soak-server.log.tmp"))
    client = HttpClient(url, images)
    lock = threading.Lock()
    counts = {"requests": 0, "errors": 0}
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    stop = threading.Event()

    def worker(k: int):
        i = k
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                status, _ = client(i % len(images))
            except Exception as err:  # noqa: BLE001  (a dropped connection is an error, and the soak goes on)
                status = type(err).__name__
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                counts["requests"] += 1
                counts["errors"] += status != 200
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                latencies.append(ms)
            i += args.concurrency

    samples = []
    t_start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(args.concurrency)]
    try:
        samples.append({"t_s": 0.0, "requests": 0, "errors": 0, "pss_mb": tree_pss_mb(server.pid),
                        "uss_mb": tree_memory_mb(server.pid, "uss")})
        for t in threads:
            t.start()
        deadline = t_start + args.minutes * 60
        while (now := time.perf_counter()) < deadline:
            time.sleep(min(args.every, deadline - now))
            with lock:
                row = {"t_s": round(time.perf_counter() - t_start, 1), **counts}
            row["pss_mb"] = tree_pss_mb(server.pid)
            row["uss_mb"] = tree_memory_mb(server.pid, "uss")  # immune to other processes mapping the same libraries
            samples.append(row)
            print(json.dumps(row), flush=True)
        stop.set()
        for t in threads:
            t.join(timeout=300)
        pss_after = tree_pss_mb(server.pid)
    finally:
        stop.set()
        procs.stop(server)
    wall = time.perf_counter() - t_start
    duration = samples[-1]["t_s"]

    # growth over the second half: the least-squares line through its samples (robust to the +-10 MB that
    # in-flight requests add at any one sample), from the middle to the end, relative to its middle value
    def growth(kind: str) -> tuple[float, float, float]:
        half = [(s["t_s"], s[kind]) for s in samples if s["t_s"] >= duration / 2]
        slope, intercept = np.polyfit([t for t, _ in half], [m for _, m in half], 1)
        middle, end = intercept + slope * duration / 2, intercept + slope * duration
        return middle, end, end / middle - 1

    middle, end, pss_growth = growth("pss_mb")
    result = {
        "settings": {"minutes": args.minutes, "concurrency": args.concurrency, "photos": len(images),
                     "SERVING_LAYOUT": config.SERVING_LAYOUT, "API_WORKERS": config.API_WORKERS,
                     "API_THREADS": config.API_THREADS, "API_MODEL_THREADS": config.API_MODEL_THREADS,
                           "MODEL_THREADS": config.MODEL_THREADS},
        "requests": counts["requests"], "errors": counts["errors"], "statuses": statuses,
        "images_per_s": round(counts["requests"] / wall, 2),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
        "latency_ms_max": round(float(np.max(latencies)), 1),
        "pss_mb_idle": samples[0]["pss_mb"],
        "pss_mb_peak": max(s["pss_mb"] for s in samples),
        "pss_mb_after": pss_after,
        "pss_mb_middle": round(middle, 1), "pss_mb_end": round(end, 1),
        "pss_growth_second_half": round(pss_growth, 4),
        "uss_mb_peak": max(s["uss_mb"] for s in samples),
        "uss_growth_second_half": round(growth("uss_mb")[2], 4),
        "targets": {"errors": 0, "pss_growth_second_half": "<= 0.02", "pss_mb_peak": "<= 800"},
        "samples": samples,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1), f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
