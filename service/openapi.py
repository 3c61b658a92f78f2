"""The OpenAPI description of the HTTP contract (served at /docs.json): request bodies, the result and error
shapes. tests/test_contract.py fuzzes the running API against it (schemathesis), so it must not lie."""
from __future__ import annotations

from skinscan import config

ERROR = {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {"error": {
    "type": "object", "required": ["code", "message"], "additionalProperties": False,
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}

ENTRY = {"type": "object", "required": ["id", "name", "probability"], "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "probability": {"type": "number", "minimum": 0, "maximum": 1}}}

RESULT = {"type": "object", "required": ["verdict", "message", "disease", "candidates", "differential", "quality", "skin",
                                         "unknown", "info", "model", "timings_ms", "disclaimer"], "properties": {
    "verdict": {"type": "string", "enum": ["disease", "uncertain", "unknown", "not_skin"]},
    "message": {"type": "string", "description": "what the verdict means for the person, in plain words"},
    "disease": {**ENTRY, "nullable": True},
    "candidates": {"type": "array", "maxItems": 2, "items": ENTRY,
                   "description": "the infections the answer names: the disease, the two likeliest when uncertain, else none"},
    "differential": {"type": "array", "maxItems": config.TOP_K, "items": ENTRY},
    "quality": {"type": "object", "required": ["ok", "warnings", "metrics"], "properties": {
        "ok": {"type": "boolean"},
        "warnings": {"type": "array", "items": {"type": "object", "required": ["code", "message"]}},
        "metrics": {"type": "object"}}},
    "skin": {"type": "object", "required": ["is_skin", "score"],
             "properties": {"is_skin": {"type": "boolean"}, "score": {"type": "number"}}},
    "unknown": {"type": "object", "required": ["is_unknown", "score", "confidence"],
                "properties": {"is_unknown": {"type": "boolean"}, "score": {"type": "number"},
                               "confidence": {"type": "number", "minimum": 0, "maximum": 1}}},
    "info": {"type": "object", "nullable": True, "required": ["id", "name", "urgency"]},
    "model": {"type": "object", "required": ["name", "version"]},
    "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}},
    "disclaimer": {"type": "string"}}}


def json_body(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "4XX": json_body(ERROR, 'Bad request: {"error": {"code", "message"}}'),
    "503": json_body(ERROR, "Busy: try again after Retry-After seconds"),
    "500": json_body(ERROR, "Internal error"),
}

MULTIPART = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image"],
    "properties": {"image": {"type": "string", "format": "binary", "description": "JPEG, PNG, WebP or BMP photo"}},
}}}}}

MULTIPART_BATCH = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image"],
    "properties": {"image": {"type": "array", "minItems": 1, "maxItems": config.MAX_BATCH_FILES,
                             "items": {"type": "string", "format": "binary"},
                             "description": f"Up to {config.MAX_BATCH_FILES} photos, each a field named 'image'"}},
}}}}}

PREDICT = {"200": json_body(RESULT, "The result"), **ERRORS}
PREDICT_BATCH = {"200": json_body({"type": "array", "items": {"oneOf": [RESULT, ERROR]}},
                                  "One result or error per photo, in order"), **ERRORS}
DISEASES = {"200": json_body({"type": "array", "items": {"type": "object", "required": ["id", "name", "urgency"]}},
                             "The disease cards"), **ERRORS}
MODEL = {"200": json_body({"type": "object", "required": ["test", "gates", "figures"]}, "Model card figures"), **ERRORS}
FIGURE = {"200": {"description": "PNG image", "content": {"image/png": {"schema": {"type": "string",
                                                                                   "format": "binary"}}}},
          **ERRORS}
