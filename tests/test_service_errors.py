"""The API's paths that a healthy server cannot be made to take on demand, in-process on the real FastAPI app: the
500 and 503 handlers (JSON error shape, Retry-After), 404/405, the classifier call's retry, and an "uncertain" answer
from a model copy whose gates make a chosen real photo uncertain (conftest)."""
from __future__ import annotations

import asyncio
import warnings
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import bentoml
import jsonschema
import numpy as np
import prometheus_client
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import service.service as api
from service import openapi


@pytest.fixture
def client():
    return TestClient(api.app, raise_server_exceptions=False)


def assert_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and len(body["error"]["message"]) > 10
    return body


def test_unexpected_exception_is_500_json(client):
    # outside `bentoml serve` there is no service instance: the route fails like any unexpected bug would
    assert_error(client.get("/diseases"), 500, "internal_error")


def test_overload_is_503_json_with_retry_after(client, monkeypatch):
    def shedding():
        raise bentoml.exceptions.ServiceUnavailable("queue full")

    monkeypatch.setattr(api, "service", shedding)
    resp = client.get("/model")
    assert_error(resp, 503, "busy")
    assert int(resp.headers["Retry-After"]) > 0


def test_404_and_405_use_the_error_shape(client):
    assert_error(client.get("/predict"), 405, "method_not_allowed")
    assert_error(client.get("/model/nope.png"), 404, "not_found")
    assert_error(client.post("/nope/deeper"), 404, "not_found")
    resp = client.delete("/diseases")
    assert_error(resp, 405, "method_not_allowed")
    assert "GET" in resp.headers["Allow"]


class Forward:
    """Stands in for the classifier service's client: fails ``failures`` times with ``error``, then answers."""

    def __init__(self, failures: int, error: Exception):
        self.failures, self.error, self.calls = failures, error, 0

    async def forward(self, x):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return np.ones((1, 3), np.float32)


class Owner:
    def __init__(self, forward: Forward):
        self.classifier = type("Dep", (), {"to_async": forward})()


@pytest.mark.parametrize("error", [bentoml.exceptions.ServiceUnavailable("shed"),
                                   aiohttp.ClientConnectionError("closed")])
def test_classifier_call_is_retried(error, monkeypatch):
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    fwd = Forward(2, error)
    out = asyncio.run(api.SkinScan.inner.classify(Owner(fwd), np.zeros((224, 224, 3), np.float32)))
    assert fwd.calls == 3 and out.shape == (1, 3)


def test_classifier_retries_are_bounded(monkeypatch):
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    fwd = Forward(5, bentoml.exceptions.ServiceUnavailable("shed"))
    with pytest.raises(bentoml.exceptions.ServiceUnavailable):
        asyncio.run(api.SkinScan.inner.classify(Owner(fwd), np.zeros((224, 224, 3), np.float32)))
    assert fwd.calls == 3


_real_sleep = asyncio.sleep


async def _no_sleep(seconds, *args, **kwargs):
    await _real_sleep(0)


def json_schema(schema):
    """An OpenAPI 3.0 schema as JSON Schema for jsonschema: ``nullable`` becomes a "null" type."""
    if isinstance(schema, list):
        return [json_schema(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: json_schema(v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable"):
        out["type"] = [schema["type"], "null"]
    return out


class InProcess:
    """Stands in for the served SkinScan: its own analyse, with the real pipeline on a given model directory."""

    analyse = api.SkinScan.inner.analyse

    def __init__(self, model_dir):
        from skinscan.pipeline import Pipeline

        self.pipeline, self.cpu_pool = Pipeline(model_dir), ThreadPoolExecutor(1)


def test_uncertain_answer_matches_the_schema_and_is_counted(client, monkeypatch, uncertain_model_dir, uncertain_sample):
    """POST /predict with the real pipeline on a model copy whose gates make a real photo "uncertain" (conftest)."""
    photo, expected = uncertain_sample
    monkeypatch.setattr(api, "service", lambda: InProcess(uncertain_model_dir))
    counted = lambda: prometheus_client.REGISTRY.get_sample_value(  # noqa: E731
        "skinscan_verdicts_total", {"verdict": "uncertain"}) or 0.0
    before = counted()
    resp = client.post("/predict", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    jsonschema.validate(body, json_schema(openapi.RESULT))
    assert body["verdict"] == "uncertain" and body["disease"] is None and len(body["candidates"]) == 2
    assert body["candidates"] == expected["candidates"] and body["message"] == expected["message"]
    assert counted() == before + 1
    with pytest.raises(jsonschema.ValidationError):  # and the check can fail: 3 candidates are one too many
        jsonschema.validate({**body, "candidates": body["differential"]}, json_schema(openapi.RESULT))
