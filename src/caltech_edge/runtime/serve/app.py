"""The WSGI application behind ``serve``: routes, body handling, admission, JSON errors.

A plain WSGI callable (no framework) so any WSGI server can host it; ``serve`` puts it on
waitress (:mod:`caltech_edge.runtime.serve`). Every answer, errors included, is JSON.
Images go through the library's one decoder (:func:`caltech_edge.data.imageio.decode_image`):
the same EXIF orientation, the same pixel and aspect-ratio limits read from the header
before decoding, the same pixels as training.

Admission: decode + inference run in at most ``workers`` requests at once; up to
``max_queue`` more wait (at most ``queue_timeout`` s) and anything beyond is answered
``503`` with ``Retry-After`` at once, so a burst cannot pile up threads, memory and latency.
"""

from __future__ import annotations

import json
import logging
import threading
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import parse_qs

import numpy as np

from ...data.imageio import ImageDecodeError, ImageTooLargeError, decode_image
from ..frames import BadFrameError
from ..predictor import EdgeModel
from .openapi import openapi_schema

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

#: Above this the server refuses an image even if its body is small (decompression bombs).
MAX_PIXELS = 40_000_000

#: Content types taken as a raw image body; SageMaker clients send ``application/x-image``.
RAW_TYPES = ("application/octet-stream", "application/x-image")

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class HttpError(Exception):
    """An answer other than 200: ``status``, a one-line message, extra headers."""

    def __init__(
        self, status: int, message: str, headers: Optional[List[Tuple[str, str]]] = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []


class Admission:
    """At most ``workers`` requests inside, ``max_queue`` waiting, the rest 503 at once."""

    def __init__(
        self, workers: int, max_queue: int, queue_timeout: float, retry_after: int = 1
    ) -> None:
        if workers < 1 or max_queue < 0 or queue_timeout < 0:
            raise ValueError("workers >= 1, max_queue >= 0 and queue_timeout >= 0 required")
        self.workers, self.max_queue, self.queue_timeout = workers, max_queue, queue_timeout
        self.retry_after = max(1, int(retry_after))
        self._slots = threading.BoundedSemaphore(workers)
        self._mutex = threading.Lock()
        self.waiting = 0  # requests in the queue now
        self.active = 0  # requests holding a slot now
        self.rejected = 0  # 503s answered so far

    def _busy(self) -> HttpError:
        with self._mutex:
            self.rejected += 1
        retry = self.retry_after
        return HttpError(
            503,
            "server busy ({} in progress, {} waiting); retry in {} s".format(
                self.workers, self.max_queue, retry
            ),
            [("Retry-After", str(retry))],
        )

    def acquire(self) -> None:
        """Take a slot, wait in the bounded queue, or raise the 503 :class:`HttpError`."""
        if self._slots.acquire(blocking=False):
            self._enter()
            return
        with self._mutex:
            if self.waiting >= self.max_queue:
                full = True
            else:
                full = False
                self.waiting += 1
        if full:
            raise self._busy()
        try:
            got = self._slots.acquire(timeout=self.queue_timeout)
        finally:
            with self._mutex:
                self.waiting -= 1
        if not got:
            raise self._busy()
        self._enter()

    def _enter(self) -> None:
        with self._mutex:
            self.active += 1

    def release(self) -> None:
        with self._mutex:
            self.active -= 1
        self._slots.release()


def _multipart_file(content_type: str, body: bytes) -> bytes:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise HttpError(400, "malformed multipart/form-data body")
    for part in message.iter_parts():
        if part.get_filename() is not None or part.get_content_maintype() == "image":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    raise HttpError(400, "multipart/form-data body has no file part")


def image_bytes(content_type: str, body: bytes) -> bytes:
    """The encoded image in a request body (raw, or the first file of a multipart form)."""
    main = content_type.split(";")[0].strip().lower()
    if main == "multipart/form-data":
        body = _multipart_file(content_type, body)
    elif not (main.startswith("image/") or main in RAW_TYPES):
        raise HttpError(
            415,
            "Content-Type {!r} not supported; send image/jpeg, image/png, application/x-image, "
            "application/octet-stream or multipart/form-data".format(main),
        )
    if not body:
        raise HttpError(400, "empty body: POST the image bytes (JPEG, PNG, WebP, ...)")
    return body


def decode_body(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Image bytes -> upright BGR frame; 413 for images over the limits, 400 otherwise."""
    try:
        return decode_image(data, name="body", max_pixels=max_pixels, order="BGR")
    except ImageTooLargeError as exc:
        raise HttpError(413, exc.reason) from None
    except ImageDecodeError as exc:
        raise HttpError(
            400, "{}; send a JPEG, PNG, BMP, GIF, WebP or TIFF image".format(exc.reason)
        ) from None


class EdgeApp:
    """The WSGI callable: ``POST /predict`` and ``/invocations``, ``GET /health``, ``/ping``
    and ``/openapi.json``; JSON 404/405 for everything else."""

    def __init__(
        self,
        model: EdgeModel,
        *,
        max_bytes: int = 10 * 1024 * 1024,
        top_k: int = 5,
        max_pixels: int = MAX_PIXELS,
        admission: Optional[Admission] = None,
        lock: Optional[Any] = None,
    ) -> None:
        self.model = model
        self.max_bytes = int(max_bytes)
        self.top_k = int(top_k)
        self.max_pixels = int(max_pixels)
        self.admission = admission or Admission(1, 8, 10.0)
        self.lock = lock or threading.Lock()  # backends are not all re-entrant
        self.routes = {
            "/predict": {"POST": self._predict},
            "/invocations": {"POST": self._predict},
            "/health": {"GET": self._health},
            "/ping": {"GET": self._ping},
            "/openapi.json": {"GET": self._openapi},
        }  # type: Dict[str, Dict[str, Callable[[Dict[str, Any]], Any]]]

    # -- handlers ------------------------------------------------------------------------
    def _health(self, environ: Dict[str, Any]) -> Any:
        return {"status": "ok", "model": self.model.info, "classes": len(self.model.labels)}

    def _ping(self, environ: Dict[str, Any]) -> Any:
        return {"status": "ok"}

    def _openapi(self, environ: Dict[str, Any]) -> Any:
        return openapi_schema(self.model, self.max_bytes)

    def _top_k(self, environ: Dict[str, Any]) -> int:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            value = int(query.get("top_k", [self.top_k])[0])
        except ValueError:
            value = 0
        if value < 1:
            raise HttpError(400, "top_k must be a positive integer")
        return value

    def _body(self, environ: Dict[str, Any]) -> bytes:
        # the server has already read (and de-chunked) the whole body, up to its own cap
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HttpError(400, "invalid Content-Length") from None
        if length > self.max_bytes:
            raise HttpError(
                413, "body of {} bytes exceeds the limit of {}".format(length, self.max_bytes)
            )
        return environ["wsgi.input"].read(length) if length > 0 else b""

    def _predict(self, environ: Dict[str, Any]) -> Any:
        top_k = self._top_k(environ)
        body = self._body(environ)
        data = image_bytes(environ.get("CONTENT_TYPE") or "application/octet-stream", body)
        self.admission.acquire()
        try:
            frame = decode_body(data, self.max_pixels)
            with self.lock:
                return self.model.predict(frame, top_k=top_k)
        except BadFrameError as exc:
            raise HttpError(400, str(exc)) from None
        finally:
            self.admission.release()

    # -- WSGI ------------------------------------------------------------------------------
    def _dispatch(self, environ: Dict[str, Any]) -> Any:
        path = environ.get("PATH_INFO") or "/"
        methods = self.routes.get(path)
        if methods is None:
            raise HttpError(
                404,
                "no such path {!r}; try POST /predict or /invocations, GET /health, /ping or "
                "/openapi.json".format(path),
            )
        method = environ.get("REQUEST_METHOD", "GET").upper()
        handler = methods.get("GET" if method == "HEAD" else method)
        if handler is None:
            allow = ", ".join(sorted(set(methods) | ({"HEAD"} if "GET" in methods else set())))
            raise HttpError(
                405,
                "{} {} is not supported; use {}".format(method, path, allow),
                [("Allow", allow)],
            )
        return handler(environ)

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = []  # type: List[Tuple[str, str]]
        try:
            status, obj = 200, self._dispatch(environ)
        except HttpError as exc:
            status, obj, headers = exc.status, {"error": str(exc)}, exc.headers
        except Exception:  # a bug or a backend failure: logged, answered as JSON
            log.exception("serve: unexpected error")
            status, obj = 500, {"error": "internal error; see the server log"}
        body = respond(start_response, status, obj, headers)
        # HEAD: the GET answer's headers (Content-Length included) without its body
        return [] if environ.get("REQUEST_METHOD", "").upper() == "HEAD" else body


def respond(
    start_response: StartResponse,
    status: int,
    obj: Any,
    headers: Optional[List[Tuple[str, str]]] = None,
) -> List[bytes]:
    """Start a JSON response and return its body (one chunk, with Content-Length)."""
    data = json.dumps(obj).encode("utf-8")
    start_response(
        "{} {}".format(status, _REASONS.get(status, "Error")),
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            *(headers or []),
        ],
    )
    return [data]
