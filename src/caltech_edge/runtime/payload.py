"""The versioned JSON payload every publisher sends (documented in docs/payload-schema.md).

``PAYLOAD_SCHEMA`` is the JSON Schema (draft 2020-12) of version ``SCHEMA_VERSION``;
:func:`validate_payload` checks a payload against it without needing the ``jsonschema``
package (a device may not have it). Consumers de-duplicate on ``(device, seq)``.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Dict, List, Optional

SCHEMA_VERSION = 1

_PREDICTION = {
    "type": "object",
    "required": ["label", "index", "probability"],
    "properties": {
        "label": {"type": "string"},
        "index": {"type": "integer", "minimum": 0},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
    },
}

PAYLOAD_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/caltech-edge/caltech-edge/docs/payload.schema.json",
    "title": "caltech-edge inference result",
    "type": "object",
    "required": [
        "schema_version",
        "seq",
        "device",
        "model",
        "timestamp",
        "predictions",
        "latency_ms",
    ],
    "properties": {
        "schema_version": {"type": "integer", "const": SCHEMA_VERSION},
        "seq": {"type": "integer", "minimum": 1},
        "device": {"type": "string"},
        "model": {
            "type": "object",
            "required": ["name", "version", "hash"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "hash": {"type": "string"},
                "format": {"type": "string"},
                "precision": {"type": "string"},
            },
        },
        "timestamp": {"type": "string"},
        "predictions": {"type": "array", "items": _PREDICTION},
        "top": {"oneOf": [_PREDICTION, {"type": "null"}]},
        "latency_ms": {
            "type": "object",
            "required": ["total"],
            "properties": {
                "total": {"type": "number", "minimum": 0},
                "preprocess": {"type": "number", "minimum": 0},
                "inference": {"type": "number", "minimum": 0},
                "postprocess": {"type": "number", "minimum": 0},
            },
        },
        "frame": {
            "type": "object",
            "properties": {
                "index": {"type": "integer", "minimum": 0},
                "source": {"type": "string"},
                "skipped_bad": {"type": "integer", "minimum": 0},
            },
        },
        "reason": {"type": "string", "enum": ["change", "interval", "every"]},
        "smoothed_over": {"type": "integer", "minimum": 1},
        "epoch": {"type": "string"},
        "gap": {
            "type": "object",
            "required": ["first", "last"],
            "properties": {
                "first": {"type": "integer", "minimum": 1},
                "last": {"type": "integer", "minimum": 1},
            },
        },
    },
}


def now_iso() -> str:
    """UTC timestamp with milliseconds, ISO 8601 (what AWS IoT rules parse)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def make_payload(
    result: Dict[str, Any],
    *,
    seq: int,
    device: str,
    top: Optional[Dict[str, Any]] = None,
    frame: Optional[Dict[str, Any]] = None,
    reason: str = "every",
    smoothed_over: int = 1,
    epoch: Optional[str] = None,
    gap: Optional[Dict[str, int]] = None,
) -> Dict[str, Any]:
    """Wrap one :meth:`EdgeModel.predict` result (possibly smoothed) as a versioned payload.

    ``epoch`` names the device's sequence state (new when it had to start from nothing);
    ``gap`` announces ids a killed previous run reserved but may never have published.
    """
    payload = {
        "schema_version": SCHEMA_VERSION,
        "seq": int(seq),
        "device": device,
        "model": dict(result["model"]),
        "timestamp": result.get("timestamp") or now_iso(),
        "predictions": list(result["predictions"]),
        "top": top,
        "latency_ms": dict(result["latency_ms"]),
        "frame": dict(frame or {}),
        "reason": reason,
        "smoothed_over": int(smoothed_over),
    }  # type: Dict[str, Any]
    if epoch is not None:
        payload["epoch"] = str(epoch)
    if gap is not None:
        payload["gap"] = {"first": int(gap["first"]), "last": int(gap["last"])}
    return payload


def encode(payload: Dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=False).encode("utf-8")


_TYPES = {  # type: Dict[str, Any]
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "null": type(None),
}


def _check(value: Any, schema: Dict[str, Any], where: str, errors: List[str]) -> None:
    if "oneOf" in schema:
        matches = 0
        for option in schema["oneOf"]:
            sub = []  # type: List[str]
            _check(value, option, where, sub)
            matches += not sub
        if matches != 1:
            errors.append(
                "{}: matches {} of the allowed forms, needs exactly 1".format(where, matches)
            )
        return
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, _TYPES[kind]) and not (
            kind in ("integer", "number") and isinstance(value, bool)
        )
        if not ok:
            errors.append("{}: expected {}, got {}".format(where, kind, type(value).__name__))
            return
    if "const" in schema and value != schema["const"]:
        errors.append("{}: must be {!r}".format(where, schema["const"]))
    if "enum" in schema and value not in schema["enum"]:
        errors.append("{}: must be one of {}".format(where, schema["enum"]))
    if "minimum" in schema and value < schema["minimum"]:
        errors.append("{}: below minimum {}".format(where, schema["minimum"]))
    if "maximum" in schema and value > schema["maximum"]:
        errors.append("{}: above maximum {}".format(where, schema["maximum"]))
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                errors.append("{}: missing {!r}".format(where, key))
        for key, child in schema.get("properties", {}).items():
            if key in value:
                _check(value[key], child, "{}.{}".format(where, key), errors)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], "{}[{}]".format(where, i), errors)


def validate_payload(payload: Any) -> List[str]:
    """Problems with ``payload`` against :data:`PAYLOAD_SCHEMA` (empty list = valid)."""
    errors = []  # type: List[str]
    _check(payload, PAYLOAD_SCHEMA, "payload", errors)
    return errors
