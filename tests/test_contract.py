"""Fuzz the HTTP contract: schemathesis generates requests from the running API's own OpenAPI schema
(/docs.json) and checks every answer: no 5xx, status codes, content types and bodies valid against the schema
(which gives every 4xx the {"error": {"code", "message"}} shape), invalid requests rejected. A bounded number
of examples per operation, a fixed seed.

One check is left out: "positive data acceptance" (a schema-valid request must get a 2xx). The schema can only
say "a binary file named image"; whether the bytes are a usable photo is decided by decoding them, so schema-valid
junk rightly gets 415/422."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 50
OUR_OPERATIONS = r"^/(predict|predict_batch|diseases|model.*)$"  # not BentoML's own /readyz, /livez, /metrics
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_api_contract_fuzzed(api_url, tmp_path):
    cmd = [str(SCHEMATHESIS), "run", f"{api_url}/docs.json", "--include-path-regex", OUR_OPERATIONS,
           "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", "1", "--checks", "all",
           "--exclude-checks", "positive_data_acceptance", "--request-timeout", "120", "--continue-on-failure",
           "--no-shrink", "--report-dir", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)  # its cache stays there
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "Tested: 5" in out.stdout, out.stdout[-3000:]  # /predict, /predict_batch, /diseases, /model, figures
    print(out.stdout[-1500:])


def test_schema_describes_results_and_errors(api_url):
    """Guard: the schema declares the result and the error shapes, so the fuzzing above validates them."""
    spec = requests.get(f"{api_url}/docs.json", timeout=30).json()
    for path in ("/predict", "/predict_batch"):
        responses = spec["paths"][path]["post"]["responses"]
        error = responses["4XX"]["content"]["application/json"]["schema"]
        assert error["required"] == ["error"] and error["properties"]["error"]["required"] == ["code", "message"]
        assert responses["200"]["content"]["application/json"]["schema"]
        assert "503" in responses and "500" in responses
