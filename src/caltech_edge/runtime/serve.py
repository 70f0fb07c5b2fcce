"""The HTTP fallback: the same runtime behind ``POST /predict`` (stdlib only, no new deps).

For devices that call an endpoint instead of running the model. ``POST /predict`` takes a
raw JPEG/PNG body (any ``image/*`` or ``application/octet-stream``) or a
``multipart/form-data`` upload (first file part) and answers the predictor's JSON;
``GET /health`` and ``GET /openapi.json`` (OpenAPI 3.0) describe it. Bodies above
``max_bytes`` get 413 without being read, undecodable images 400, other content types 415.
Binds to 127.0.0.1 unless told otherwise. Python 3.8-compatible.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Tuple
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

from .frames import BadFrameError
from .predictor import EdgeModel

log = logging.getLogger(__name__)

MAX_PIXELS = 40_000_000  # refuse decompression bombs before decoding them


def openapi_schema(model: EdgeModel, max_bytes: int) -> Dict[str, Any]:
    prediction = {
        "type": "object",
        "properties": {
            "label": {"type": "string"},
            "index": {"type": "integer"},
            "probability": {"type": "number"},
        },
    }
    error = {"type": "object", "properties": {"error": {"type": "string"}}}
    errors = {
        str(code): {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code, text in (
            (400, "the body is not a decodable image"),
            (411, "Content-Length missing"),
            (413, "the body is larger than {} bytes".format(max_bytes)),
            (415, "unsupported Content-Type"),
        )
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "caltech-edge inference",
            "version": "1",
            "description": "Model {} ({} classes)".format(model.card.name, len(model.labels)),
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Classify one image",
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
                            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                            "image/png": {"schema": {"type": "string", "format": "binary"}},
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"file": {"type": "string", "format": "binary"}},
                                }
                            },
                        },
                    },
                    "responses": dict(
                        {
                            "200": {
                                "description": "predictions, best first",
                                "content": {
                                    "application/json": {
                                        "schema": {"$ref": "#/components/schemas/Prediction"}
                                    }
                                },
                            }
                        },
                        **errors,
                    ),
                }
            },
            "/health": {
                "get": {
                    "summary": "liveness and model identity",
                    "responses": {"200": {"description": "ok"}},
                }
            },
            "/openapi.json": {
                "get": {"summary": "this document", "responses": {"200": {"description": "ok"}}}
            },
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
                "Error": error,
            }
        },
    }


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def image_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) of a JPEG/PNG read from its header without decoding; None if neither."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data[:3] == b"\xff\xd8\xff":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            i += 2 + length
        return (0, 0)  # a JPEG without a frame header: the decoder will refuse it
    return None


def decode_image(data: bytes) -> np.ndarray:
    """JPEG/PNG bytes -> BGR uint8; 400 for garbage, 413 for decompression bombs.

    The pixel count is read from the header before decoding, so a small file that
    claims a gigantic image is refused without allocating it.
    """
    if not data:
        raise HttpError(400, "empty body: POST the JPEG or PNG bytes")
    size = image_size(data)
    if size is None:
        raise HttpError(400, "the body is not a JPEG or PNG image")
    if size[0] * size[1] > MAX_PIXELS:
        raise HttpError(
            413, "image of {}x{} has more than {} pixels".format(size[0], size[1], MAX_PIXELS)
        )
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise HttpError(400, "the body is not a decodable image (send JPEG or PNG bytes)")
    return image


def _multipart_file(content_type: str, body: bytes) -> bytes:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise HttpError(400, "malformed multipart/form-data body")
    for part in message.iter_parts():
        if part.get_filename() is not None or part.get_content_maintype() == "image":
            return part.get_payload(decode=True) or b""
    raise HttpError(400, "multipart/form-data body has no file part")


class _Handler(BaseHTTPRequestHandler):
    server_version = "caltech-edge"
    protocol_version = "HTTP/1.1"

    # set on the subclass made by make_server
    model = None  # type: Any
    max_bytes = 0
    top_k = 5
    lock = None  # type: Any

    def log_message(self, fmt: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400 and status != 404:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        if path == "/health":
            self._send(
                200, {"status": "ok", "model": self.model.info, "classes": len(self.model.labels)}
            )
        elif path == "/openapi.json":
            self._send(200, openapi_schema(self.model, self.max_bytes))
        else:
            self._send(
                404, {"error": "no such path; try POST /predict, GET /health, GET /openapi.json"}
            )

    def _read_body(self) -> Tuple[str, bytes]:
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length_text is None:
            raise HttpError(411, "Content-Length required (chunked uploads are not accepted)")
        try:
            length = int(length_text)
        except ValueError:
            raise HttpError(400, "invalid Content-Length") from None
        if length < 0:
            raise HttpError(400, "invalid Content-Length")
        if length > self.max_bytes:
            raise HttpError(
                413, "body of {} bytes exceeds the limit of {}".format(length, self.max_bytes)
            )
        ctype = self.headers.get("Content-Type", "application/octet-stream")
        return ctype, self.rfile.read(length)

    def do_POST(self) -> None:
        url = urlparse(self.path)
        if url.path != "/predict":
            self._send(404, {"error": "POST /predict only"})
            return
        try:
            top_k = int(parse_qs(url.query).get("top_k", [self.top_k])[0])
            if top_k < 1:
                raise ValueError(top_k)
        except ValueError:
            self._send(400, {"error": "top_k must be a positive integer"})
            return
        try:
            ctype, body = self._read_body()
            main = ctype.split(";")[0].strip().lower()
            if main == "multipart/form-data":
                body = _multipart_file(ctype, body)
            elif not (main.startswith("image/") or main == "application/octet-stream"):
                raise HttpError(
                    415,
                    "Content-Type {!r} not supported; send image/jpeg, image/png, "
                    "application/octet-stream or multipart/form-data".format(main),
                )
            image = decode_image(body)
            with self.lock:  # one inference at a time: backends are not all re-entrant
                result = self.model.predict(image, top_k=top_k)
        except HttpError as exc:
            self._send(exc.status, {"error": str(exc)})
            return
        except BadFrameError as exc:
            self._send(400, {"error": str(exc)})
            return
        self._send(200, result)


def make_server(
    model: EdgeModel,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_bytes: int = 10 * 1024 * 1024,
    top_k: int = 5,
    lock: Optional[Any] = None,
) -> ThreadingHTTPServer:
    """A ready (not yet serving) HTTP server; call ``serve_forever()``. ``port=0`` = any."""
    handler = type(
        "EdgeHandler",
        (_Handler,),
        {
            "model": model,
            "max_bytes": int(max_bytes),
            "top_k": int(top_k),
            "lock": lock or threading.Lock(),
        },
    )
    server = ThreadingHTTPServer((host, int(port)), handler)
    server.daemon_threads = True
    return server
