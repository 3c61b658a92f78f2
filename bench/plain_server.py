"""The baseline for bench/http.py: the plain per-request server anyone could write in 20 lines.

FastAPI on uvicorn, a sync endpoint (so Starlette's thread pool runs it) calling ``Pipeline.run`` with the
Keras (TensorFlow) forward: one model call per request, no batching, no BentoML.

    .venv/bin/python -m uvicorn bench.plain_server:app --host 127.0.0.1 --port PORT
"""
from __future__ import annotations

from fastapi import FastAPI, File, UploadFile
from fastapi.responses import JSONResponse

from skinscan import config
from skinscan.classifier import KerasClassifier
from skinscan.decode import InputError
from skinscan.pipeline import Pipeline

pipeline = Pipeline(config.MODEL_DIR, KerasClassifier(config.MODEL_DIR).forward)
app = FastAPI()


@app.get("/readyz")
def readyz():
    return "ok"


@app.post("/predict")
def predict(image: UploadFile = File(...)):
    try:
        return pipeline.run(image.file.read())
    except InputError as err:
        return JSONResponse({"error": err.as_dict()}, status_code=422)
