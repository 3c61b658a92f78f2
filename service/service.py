"""skinscan HTTP API on BentoML, in one of two layouts (``config.SERVING_LAYOUT``, env ``SKINSCAN_SERVING_LAYOUT``):

* ``in_process`` (default, best on CPU): one service, ``SkinScan``, runs the whole pipeline in each of its
  ``config.API_WORKERS`` worker processes, the model on LiteRT inside the worker (``config.API_MODEL_THREADS``
  threads each). No inter-process hop per image (README "Performance" has the layouts measured).
* ``composed`` (for a node where the model runs on an accelerator or scales apart from the CPU steps):
  ``SkinScanClassifier`` holds the model with adaptive batching (one forward pass per batch) and ``SkinScan``
  runs decode, quality and the gates around it (``bentoml.depends``).

``SkinScan`` owns the HTTP contract: every bad request gets a 4xx JSON ``{"error": {"code", "message"}}``.
Uploads are parsed in memory, never written to disk or logged. TensorFlow is never imported here.

    .venv/bin/python -m bentoml serve service.service:SkinScan --port 3000
"""
from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import bentoml
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from skinscan import config
from skinscan.classifier import Classifier
from skinscan.decode import InputError
from skinscan.pipeline import Pipeline, Prepared
from service import openapi
from service.uploads import read_images

STATUS = {  # InputError code -> HTTP status; any other code (a malformed request) is 400
    "too_large": 413, "too_many_pixels": 413, "decompression_bomb": 413, "request_too_large": 413,
    "unsupported_format": 415, "unsupported_media_type": 415, "not_an_image": 415,
    "truncated": 422, "unusable_image": 422,
}

VERDICTS = bentoml.metrics.Counter(name="skinscan_verdicts", documentation="Results by verdict", labelnames=["verdict"])
QUALITY_WARNINGS = bentoml.metrics.Counter(
    name="skinscan_quality_warnings", documentation="Quality warnings by code", labelnames=["code"])
INPUT_ERRORS = bentoml.metrics.Counter(
    name="skinscan_input_errors", documentation="Rejected inputs by error code", labelnames=["code"])

app = FastAPI(title="skinscan", description="Skin-infection photo triage. Not a medical diagnosis.", version="1")

COMPOSED = config.SERVING_LAYOUT == "composed"
# BentoML's OpenTelemetry middleware kept ~6 KB of memory per request even with no exporter configured
# (bench/soak.py: +2.3 MB per 400 requests per worker; flat with the paths excluded), so requests are not traced
# unless SKINSCAN_API_TRACING=1 (then configure an exporter in BentoML's tracing settings).
TRACING = {} if config.API_TRACING else {"excluded_urls": ["/"]}  # a pattern every URL matches


@app.exception_handler(bentoml.exceptions.ServiceUnavailable)
async def overloaded(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": {"code": "busy", "message": "skinscan is busy; try again in a few seconds."}},
                        status_code=503, headers={"Retry-After": "5"})


@app.exception_handler(StarletteHTTPException)
async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """404, 405, ...: the same error shape as every other 4xx."""
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
    return JSONResponse({"error": {"code": code, "message": f"{exc.detail}: {request.method} {request.url.path}"}},
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


@app.exception_handler(Exception)
async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": {"code": "internal_error", "message": "Something went wrong on our side; the "
                                   "photo was not stored. Try again."}}, status_code=500)


@bentoml.service(name="skinscan-classifier", workers=1, traffic={"timeout": 60}, tracing=TRACING)
class SkinScanClassifier:
    """``composed`` layout only: model inputs [n, S, S, 3] (S: labels.json input_size) -> [logits | embedding]."""

    def __init__(self) -> None:
        self.model = Classifier(config.MODEL_DIR)

    # max_latency_ms is BentoML's shedding budget (requests that cannot meet it get 503), not a wait time:
    # generous, so a burst on 2 cores queues instead of failing.
    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=32, max_latency_ms=30_000)
    def forward(self, inputs: np.ndarray) -> np.ndarray:
        logits, embedding = self.model.forward(inputs.astype(np.float32))
        return np.concatenate([logits, embedding], axis=1)


def error_response(err: InputError) -> JSONResponse:
    close = {"Connection": "close"} if err.code == "request_too_large" else None  # its body was not all read
    return JSONResponse({"error": err.as_dict()}, status_code=STATUS.get(err.code, 400), headers=close)


def count(result: dict | InputError) -> None:
    if isinstance(result, InputError):
        INPUT_ERRORS.labels(code=result.code).inc()
        return
    VERDICTS.labels(verdict=result["verdict"]).inc()
    for w in result["quality"]["warnings"]:
        QUALITY_WARNINGS.labels(code=w["code"]).inc()


@bentoml.service(name="skinscan", workers=1 if COMPOSED else config.API_WORKERS,
                 traffic={"timeout": 120, "max_concurrency": 128}, tracing=TRACING)
@bentoml.asgi_app(app, path="/")
class SkinScan:
    """The public API: POST /predict, POST /predict_batch, GET /diseases, GET /model."""

    if COMPOSED:
        classifier = bentoml.depends(SkinScanClassifier)

    def __init__(self) -> None:
        # in_process: the LiteRT model in this worker; composed: it runs in SkinScanClassifier
        model = None if COMPOSED else Classifier(config.MODEL_DIR, num_threads=config.API_MODEL_THREADS)
        self.pipeline = Pipeline(config.MODEL_DIR, None if model is None else model.forward)
        # CPU steps run on a small pool: more threads than cores only trade the GIL back and forth
        self.cpu_pool = ThreadPoolExecutor(config.API_THREADS, thread_name_prefix="pipeline")
        self.diseases = [self.pipeline.cards[c] for c in self.pipeline.labels]
        self.model_summary = model_summary()

    async def analyse(self, uploads: list[bytes]) -> list[dict | InputError]:
        if COMPOSED:
            results = await self.analyse_composed(uploads)
        else:
            results = await asyncio.get_running_loop().run_in_executor(self.cpu_pool, self.pipeline.run_batch, uploads)
        for r in results:
            count(r)
        return results

    async def analyse_composed(self, uploads: list[bytes]) -> list[dict | InputError]:
        prepared = await asyncio.get_running_loop().run_in_executor(self.cpu_pool, self.pipeline.prepare_all, uploads)
        ok = [p for p in prepared if isinstance(p, Prepared)]
        t0 = time.perf_counter()
        outputs = await asyncio.gather(*(self.classify(p.model_input) for p in ok))
        model_ms = (time.perf_counter() - t0) * 1000 / max(len(ok), 1)
        n = self.pipeline.n_logits
        rows = np.concatenate(outputs) if outputs else np.zeros((0, n))
        return self.pipeline.finish_all(prepared, rows[:, :n], rows[:, n:], model_ms)

    async def classify(self, model_input: np.ndarray) -> np.ndarray:
        """One image through the batching classifier service, retried (it is idempotent) if the service sheds
        load or a pooled connection to it was closed under us."""
        for attempt in range(3):
            try:
                # float16 halves the transfer and is lossless here: inputs are multiples of 1/128 in [-1, 1]
                return await self.classifier.to_async.forward(model_input[None].astype(np.float16))
            except (bentoml.exceptions.ServiceUnavailable, aiohttp.ClientConnectionError):
                if attempt == 2:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))


def service() -> SkinScan:
    return bentoml.get_current_service()


@app.post("/predict", openapi_extra=openapi.MULTIPART, responses=openapi.PREDICT, summary="Analyse one skin photo")
async def predict(request: Request):
    try:
        (data,) = await read_images(request, max_files=1)
    except InputError as err:
        count(err)
        return error_response(err)
    (result,) = await service().analyse([data])
    return error_response(result) if isinstance(result, InputError) else result


@app.post("/predict_batch", openapi_extra=openapi.MULTIPART_BATCH, responses=openapi.PREDICT_BATCH,
          summary=f"Analyse up to {config.MAX_BATCH_FILES} photos (several 'image' fields); one result each, in order")
async def predict_batch(request: Request):
    try:
        uploads = await read_images(request, max_files=config.MAX_BATCH_FILES)
    except InputError as err:
        count(err)
        return error_response(err)
    results = await service().analyse(uploads)
    return [{"error": r.as_dict()} if isinstance(r, InputError) else r for r in results]


@app.get("/diseases", responses=openapi.DISEASES, summary="The 8 disease cards")
async def diseases():
    return service().diseases


@app.get("/model", responses=openapi.MODEL, summary="Model card figures: test metrics, calibration and gate measurements")
async def model():
    return service().model_summary


@app.get("/model/{figure}.png", responses=openapi.FIGURE, summary="Model card figure: confusion_matrix or reliability")
async def model_figure(figure: str):
    if figure not in ("confusion_matrix", "reliability"):
        return JSONResponse({"error": {"code": "not_found", "message": "No such figure."}}, status_code=404)
    return FileResponse(config.MODEL_DIR / f"{figure}.png", media_type="image/png")


class FallbackRoute(APIRoute):
    """Matches any path except BentoML's own pages, which it registers after mounting this app (index, docs.json,
    static files): BentoML mounts the app only for paths one of its routes matches, and answers others in plain text."""

    def matches(self, scope):
        if scope["path"] in ("/", "/docs.json") or scope["path"].startswith(("/static_content/", "/assets/")):
            return Match.NONE, {}
        return super().matches(scope)


async def no_such_path(request: Request, path: str):
    """Any other path: the JSON 404, or 405 where a route above has the path but not the method."""
    allowed = sorted({m for r in app.routes if r.endpoint is not no_such_path
                      and r.matches(request.scope)[0] == Match.PARTIAL for m in r.methods})
    if allowed:
        raise StarletteHTTPException(405, "Method Not Allowed", headers={"Allow": ", ".join(allowed)})
    raise StarletteHTTPException(404, "Not Found")


app.router.add_api_route("/{path:path}", no_such_path, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                         include_in_schema=False, route_class_override=FallbackRoute)


def model_summary() -> dict:
    metrics = json.loads((config.MODEL_DIR / "metrics.json").read_text())
    gates = json.loads((config.MODEL_DIR / "gates.json").read_text())["report"]
    crossval = json.loads((config.MODEL_DIR / "crossval.json").read_text())
    keep = ("n", "accuracy", "macro_f1", "ece_before_scaling", "ece_after_scaling", "per_class", "confusion_matrix",
            "model", "split", "test_decisions", "test_by_source")
    return {"test": {k: metrics[k] for k in keep if k in metrics}, "gates": gates,
            "unseen_sources": {"folds": crossval.get("held_out_sources", crossval["folds"]), "table": crossval["table"],
                               "report_only": crossval.get("report_only", {})},
            "figures": ["/model/confusion_matrix.png", "/model/reliability.png"]}
