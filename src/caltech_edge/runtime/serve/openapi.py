"""The OpenAPI 3.0 description of ``serve`` (``GET /openapi.json``).

Written by hand (no framework generates it) next to the routes it describes; the serve
tests check that every route the app answers is listed here.
"""

from __future__ import annotations

from typing import Any, Dict

from ..predictor import EdgeModel

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def _errors(max_bytes: int) -> Dict[str, Any]:
    return {
        str(code): {"description": text, "content": _JSON_ERROR}
        for code, text in (
            (400, "the body is not a decodable image, or a bad query parameter"),
            (413, "the body is larger than {} bytes, or the image too large".format(max_bytes)),
            (415, "unsupported Content-Type"),
            (503, "saturated: retry after the seconds in the Retry-After header"),
        )
    }


def _predict_operation(summary: str, max_bytes: int) -> Dict[str, Any]:
    responses = {
        "200": {
            "description": "predictions, best first",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Prediction"}}
            },
        }
    }
    responses.update(_errors(max_bytes))
    return {
        "summary": summary,
        "parameters": [
            {
                "name": "top_k",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "default": 5},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "image/jpeg": _BINARY,
                "image/png": _BINARY,
                "application/x-image": _BINARY,
                "application/octet-stream": _BINARY,
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
        },
        "responses": responses,
    }


def _get(summary: str) -> Dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {"description": "ok"}}}}


def openapi_schema(model: EdgeModel, max_bytes: int) -> Dict[str, Any]:
    """The document for ``model`` behind a server accepting bodies up to ``max_bytes``."""
    prediction = {
        "type": "object",
        "properties": {
            "label": {"type": "string"},
            "index": {"type": "integer"},
            "probability": {"type": "number"},
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "caltech-edge inference",
            "version": "1",
            "description": "Model {} ({} classes)".format(model.card.name, len(model.labels)),
        },
        "paths": {
            "/predict": {"post": _predict_operation("Classify one image", max_bytes)},
            "/invocations": {
                "post": _predict_operation("Classify one image (SageMaker contract)", max_bytes)
            },
            "/health": _get("liveness and model identity"),
            "/ping": _get("liveness (SageMaker contract)"),
            "/openapi.json": _get("this document"),
        },
        "components": {
            "schemas": {
                "Prediction": {
                    "type": "object",
                    "required": ["predictions", "latency_ms", "model", "timestamp"],
                    "properties": {
                        "predictions": {"type": "array", "items": prediction},
                        "latency_ms": {"type": "object"},
                        "model": {"type": "object"},
                        "timestamp": {"type": "string"},
                    },
                },
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
            }
        },
    }
