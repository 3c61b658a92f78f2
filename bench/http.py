"""skinscan over HTTP vs its baselines, in one run, on this machine.

    .venv/bin/python -m bench.http [--images 64] [--passes 3] [--out bench/results/http.json]
                                   [--variant NAME='ENV=VALUE ...']...

Three servers, each at concurrency 1, 8 and 32, on the same real photos:

(a) ``plain``: ``bench/plain_server.py``, FastAPI on uvicorn, a thread pool calling ``Pipeline.run`` with the Keras
    (TensorFlow) forward, one model call per request;
(b) ``in_process``: ``Pipeline.run`` on LiteRT in this process, called from ``c`` threads (no HTTP; also
    ``run_batch`` at batch sizes 1-32, for reference);
(c) ``skinscan``: ``bentoml serve service.service:SkinScan`` as configured (``--variant`` adds runs of it with other
    settings, e.g. ``--variant composed='SKINSCAN_SERVING_LAYOUT=composed'``).

Concurrency 1 sends every photo once, one by one: those answers are the reference. Concurrency 8 and 32 send every
photo ``--passes`` times; every answer must equal the same photo's reference answer (all fields but
``timings_ms``). Memory: PSS (``psutil``'s ``memory_full_info().pss``, what a container is charged) summed over
the server's processes after the run. The HTTP client is plain ``http.client`` with keep-alive, bodies built
once, so it costs the shared cores as little as possible. Quote the ratios: they hold better than absolute
figures on a noisy machine.
"""
from __future__ import annotations

import argparse
import http.client
import json
import platform
import shlex
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import psutil

from skinscan import config, procs

LEVELS = (1, 8, 32)
PLAIN_COMMAND = ["-m", "uvicorn", "bench.plain_server:app", "--host", "127.0.0.1", "--log-level", "warning"]


def sample_images(n: int) -> list[bytes]:
    """``n`` real photos spread over the 8 classes (sorted, evenly strided: the same photos every run)."""
    every = sorted(p for p in (config.DATA_ROOT / "skin8" / "train").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not every:
        raise SystemExit(f"no photos under {config.DATA_ROOT / 'skin8' / 'train'} (set SKINSCAN_DATA)")
    return [p.read_bytes() for p in every[:: max(1, len(every) // n)][:n]]


def answer(result: dict) -> str:
    """What must not change with concurrency: the whole result except its timings."""
    return json.dumps({k: v for k, v in result.items() if k != "timings_ms"}, sort_keys=True)


def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = "skinscanbench7d1f"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class HttpClient:
    """POST /predict with one keep-alive connection per client thread."""

    def __init__(self, url: str, images: list[bytes]):
        u = urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.bodies = [multipart(d) for d in images]
        self.local = threading.local()

    def __call__(self, i: int) -> tuple[int, str]:
        body, ctype = self.bodies[i]
        for attempt in range(2):  # a keep-alive connection the server closed in between is reopened once
            conn = getattr(self.local, "conn", None) or http.client.HTTPConnection(self.host, self.port, timeout=300)
            self.local.conn = conn
            try:
                conn.request("POST", "/predict", body, {"Content-Type": ctype})
                r = conn.getresponse()
                return r.status, r.read().decode()
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise


def run_level(call, n_images: int, concurrency: int, passes: int, reference: list[str] | None) -> tuple[dict, list]:
    """``call(i) -> (status, body)`` for every photo (``passes`` times) at ``concurrency``; timings and answers."""
    order = list(range(n_images)) * passes
    latencies, answers, errors, mismatched = [], [None] * n_images, 0, 0

    def one(i):
        t0 = time.perf_counter()
        status, body = call(i)
        return i, (time.perf_counter() - t0) * 1000, status, body

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, order[: min(len(order), 2 * concurrency)]))  # warm up (connections, threads)
        t0 = time.perf_counter()
        results = list(pool.map(one, order))
        wall = time.perf_counter() - t0
    for i, ms, status, body in results:
        latencies.append(ms)
        if status != 200:
            errors += 1
            continue
        a = answer(json.loads(body))
        answers[i] = a
        if reference is not None and a != reference[i]:
            mismatched += 1
    return {"concurrency": concurrency, "requests": len(order), "errors": errors, "mismatched": mismatched,
            "images_per_s": round(len(order) / wall, 2),
            "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
            "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1)}, answers


def run_levels(call, n_images: int, passes: int) -> list[dict]:
    c1, reference = run_level(call, n_images, 1, 1, None)
    rows = [c1]
    for c in LEVELS[1:]:
        rows.append(run_level(call, n_images, c, passes, reference)[0])
    for row in rows:
        print(f"  c={row['concurrency']:>2}: {row['images_per_s']:6.1f} img/s, p50 {row['latency_ms_p50']:7.1f} ms, "
              f"p95 {row['latency_ms_p95']:7.1f} ms, errors {row['errors']}, mismatched {row['mismatched']}",
              flush=True)
    return rows


def tree_memory_mb(pid: int, kind: str = "pss") -> float:
    """``kind`` ("pss": proportional set size, shared pages split among their users; "uss": pages no other process
    maps) summed over a process and its descendants, in MiB."""
    root = psutil.Process(pid)
    total = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += getattr(p.memory_full_info(), kind)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return round(total / 2**20, 1)


def tree_pss_mb(pid: int) -> float:
    return tree_memory_mb(pid, "pss")


def in_process(images: list[bytes], passes: int) -> dict:
    from skinscan.pipeline import Pipeline

    pipeline = Pipeline()  # the serving runtime: LiteRT

    def call(i):
        try:
            return 200, json.dumps(pipeline.run(images[i]))
        except Exception as err:  # noqa: BLE001  (counted as an error, like a 4xx/5xx over HTTP)
            return 500, str(err)

    call(0)
    rows = run_levels(call, len(images), passes)
    by_batch = {}
    for bs in (1, 8, 32):
        t0 = time.perf_counter()
        for i in range(0, len(images), bs):
            pipeline.run_batch(images[i : i + bs])
        by_batch[bs] = round(len(images) / (time.perf_counter() - t0), 2)
    print(f"  run_batch img/s by batch size: {by_batch}", flush=True)
    return {"levels": rows, "run_batch_images_per_s": by_batch}


def server(name: str, cmd: list[str], env: dict, images: list[bytes], passes: int) -> dict:
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(f"bench/results/{name}.log.tmp")
    t0 = time.perf_counter()
    proc = procs.start(cmd + ["--port", str(port)], f"{url}/readyz", log, env=env)
    started_s = time.perf_counter() - t0
    try:
        idle = tree_pss_mb(proc.pid)
        rows = run_levels(HttpClient(url, images), len(images), passes)
        loaded = tree_pss_mb(proc.pid)
        processes = 1 + len(psutil.Process(proc.pid).children(recursive=True))
    finally:
        procs.stop(proc)
    print(f"  PSS idle {idle} MB, after load {loaded} MB ({processes} processes); ready in {started_s:.0f} s", flush=True)
    return {"levels": rows, "pss_mb": {"idle": idle, "after_load": loaded}, "processes": processes,
            "ready_s": round(started_s, 1), "env": env}


def level(result: dict, c: int) -> dict:
    return next(r for r in result["levels"] if r["concurrency"] == c)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--passes", type=int, default=3, help="times every photo is sent at concurrency 8 and 32")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME='ENV=VALUE ...'",
                    help="also run skinscan with these environment settings")
    ap.add_argument("--skip-plain", action="store_true", help="leave out the Keras baseline (layout exploration)")
    ap.add_argument("--out", default="bench/results/http.json")
    args = ap.parse_args(argv)
    images = sample_images(args.images)
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    result = {"machine": {"cpus": psutil.cpu_count(), "platform": platform.platform()},
              "photos": len(images), "passes": args.passes,
              "settings": {"SERVING_LAYOUT": config.SERVING_LAYOUT, "API_WORKERS": config.API_WORKERS,
                           "API_THREADS": config.API_THREADS, "API_MODEL_THREADS": config.API_MODEL_THREADS,
                           "MODEL_THREADS": config.MODEL_THREADS}}
    print(f"(b) in-process Pipeline.run on LiteRT, {len(images)} photos", flush=True)
    result["in_process"] = in_process(images, args.passes)
    if not args.skip_plain:
        print("(a) plain per-request server: FastAPI/uvicorn, thread pool, Keras forward", flush=True)
        result["plain"] = server("plain", [sys.executable, *PLAIN_COMMAND], {}, images, args.passes)
    print("(c) skinscan: bentoml serve", flush=True)
    result["skinscan"] = server("skinscan", procs.api_command(0)[:-2], {}, images, args.passes)
    for spec in args.variant:
        name, _, env = spec.partition("=")
        env = dict(kv.split("=", 1) for kv in shlex.split(env))
        print(f"(c') skinscan variant {name}: {env}", flush=True)
        result.setdefault("skinscan_variants", {})[name] = server(f"skinscan-{name}", procs.api_command(0)[:-2], env,
                                                                  images, args.passes)
    s32, s1 = level(result["skinscan"], 32), level(result["skinscan"], 1)
    best_local = max([r["images_per_s"] for r in result["in_process"]["levels"]]
                     + list(result["in_process"]["run_batch_images_per_s"].values()))
    ratios = {"skinscan_c32_over_in_process_c32": round(s32["images_per_s"] / level(result["in_process"], 32)["images_per_s"], 3),
              "skinscan_c32_over_in_process_best": round(s32["images_per_s"] / best_local, 3)}
    if "plain" in result:
        ratios["skinscan_c32_over_plain_c32"] = round(s32["images_per_s"] / level(result["plain"], 32)["images_per_s"], 3)
        ratios["skinscan_c1_p50_ms_minus_plain_c1_p50_ms"] = round(
            s1["latency_ms_p50"] - level(result["plain"], 1)["latency_ms_p50"], 1)
    result["ratios"] = ratios
    result["targets"] = {"skinscan_c32_over_plain_c32": ">= 1.8", "skinscan_c32_over_in_process_c32": ">= 0.85",
                         "skinscan_c1_p50_ms_minus_plain_c1_p50_ms": "< 0"}
    servers = [result[k] for k in ("in_process", "plain", "skinscan") if k in result]
    servers += list(result.get("skinscan_variants", {}).values())
    result["all_answers_matched_without_errors"] = all(
        r["errors"] == 0 and r["mismatched"] == 0 for s in servers for r in s["levels"])
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(ratios, indent=1), f"\nall answers matched, no errors: {result['all_answers_matched_without_errors']}"
          f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
