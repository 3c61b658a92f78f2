"""HTTP vs in-process throughput and latency, in one run, on this machine.

    .venv/bin/python -m bench.http [--images 64] [--requests 96] [--out bench/results/http.json]

1. in-process: ``Pipeline.run_batch`` at batch sizes 1, 8, 16, 32 (images/s; best batch kept) and the
   single-image latency (p50 over batch-1 runs);
2. HTTP: a real ``bentoml serve`` on loopback, ``POST /predict`` (one photo per request) at concurrency 1, 8
   and 32: throughput, p50 and p95 latency; plus the API's resident memory (all its processes) after the run.
Results are written as JSON; quote the ratios (they hold better than absolute times on noisy machines).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import requests

from skinscan import config, procs


def sample_images(n: int) -> list[bytes]:
    folder = config.DATA_ROOT / "skin8" / "train"
    if folder.is_dir():
        every = sorted(folder.rglob("*.jp*g"))
        paths = every[:: max(1, len(every) // n)][:n]
        return [p.read_bytes() for p in paths]
    from PIL import Image
    import io

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(90, 230, (400, 400, 3), dtype=np.uint8)).save(buf, "JPEG")
        out.append(buf.getvalue())
    return out


def percentile(xs, q):
    return float(np.percentile(np.asarray(xs), q)) if xs else None


def in_process(images: list[bytes]) -> dict:
    from skinscan.pipeline import Pipeline

    pipeline = Pipeline()
    pipeline.run_batch(images[:8])  # warm up
    by_batch = {}
    for bs in (1, 8, 16, 32):
        t0 = time.perf_counter()
        for i in range(0, len(images), bs):
            pipeline.run_batch(images[i : i + bs])
        by_batch[bs] = len(images) / (time.perf_counter() - t0)
    single = []
    for img in images[:24]:
        t0 = time.perf_counter()
        pipeline.run(img)
        single.append((time.perf_counter() - t0) * 1000)
    best = max(by_batch, key=by_batch.get)
    return {"images_per_s_by_batch": by_batch, "best_batch": best, "best_images_per_s": by_batch[best],
            "single_image_latency_ms_p50": percentile(single, 50)}


def http_load(url: str, images: list[bytes], concurrency: int, n_requests: int) -> dict:
    sessions = [requests.Session() for _ in range(concurrency)]
    latencies, errors = [], 0

    def one(i):
        s = sessions[i % concurrency]
        t0 = time.perf_counter()
        r = s.post(f"{url}/predict", files={"image": ("p.jpg", images[i % len(images)], "image/jpeg")}, timeout=120)
        return (time.perf_counter() - t0) * 1000, r.status_code

    for i in range(min(concurrency, 4)):  # warm up
        one(i)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for ms, status in pool.map(one, range(n_requests)):
            latencies.append(ms)
            errors += status != 200
    wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "requests": n_requests, "errors": errors, "images_per_s": n_requests / wall,
            "latency_ms_p50": percentile(latencies, 50), "latency_ms_p95": percentile(latencies, 95)}


def tree_rss_mb(proc) -> float:
    p = psutil.Process(proc.pid)
    return sum(c.memory_info().rss for c in [p, *p.children(recursive=True)]) / 2**20


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--requests", type=int, default=96)
    ap.add_argument("--out", default="bench/results/http.json")
    args = ap.parse_args(argv)
    images = sample_images(args.images)
    print(f"in-process pipeline on {len(images)} photos ...", flush=True)
    local = in_process(images)
    print(json.dumps(local, indent=1), flush=True)
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    server = procs.start(procs.api_command(port), f"{url}/readyz", Path("bench/results/server.log.tmp"))
    try:
        rss_idle = tree_rss_mb(server)
        runs = []
        for c in (1, 8, 32):
            runs.append(http_load(url, images, c, args.requests if c > 1 else max(24, args.requests // 4)))
            print(json.dumps(runs[-1]), flush=True)
        rss_loaded = tree_rss_mb(server)
    finally:
        procs.stop(server)
    c32 = next(r for r in runs if r["concurrency"] == 32)
    c1 = next(r for r in runs if r["concurrency"] == 1)
    result = {
        "machine": {"cpus": psutil.cpu_count(), "platform": platform.platform()},
        "in_process": local,
        "http": runs,
        "ratios": {
            "http_c32_over_in_process_best": c32["images_per_s"] / local["best_images_per_s"],
            "http_c1_p50_minus_in_process_single_ms": c1["latency_ms_p50"] - local["single_image_latency_ms_p50"],
        },
        "targets": {"http_c32_over_in_process_best": ">= 0.70", "http_c1_p50_minus_in_process_single_ms": "<= 30"},
        "api_memory_mb": {"idle": rss_idle, "after_load": rss_loaded},
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result["ratios"], indent=1), f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
