"""The HTTP fallback: the same runtime behind ``POST /predict`` on an established server.

For devices that call an endpoint instead of running the model, and for a SageMaker-style
container: ``POST /predict`` and ``POST /invocations`` take a raw image body (``image/*``,
``application/x-image``, ``application/octet-stream``) or a ``multipart/form-data`` upload
and answer the predictor's JSON; ``GET /health``, ``GET /ping`` and ``GET /openapi.json``
describe it. The application (:mod:`.app`) is plain WSGI; it runs on waitress (the
``serve`` extra), which gives what a hand-written ``http.server`` lacked:

* a listen backlog in the hundreds (``backlog``; 5 reset 4-6 of 50 concurrent clients),
* request framing by a real HTTP parser: every body is read (drained) before the next
  request on a keep-alive connection, chunked uploads are de-chunked, and a body larger
  than the server-side cap is answered 413 and the connection closed,
* idle and stalled connections closed after ``timeout`` seconds (keep-alive and uploads),
  and requests that trickle in for longer than ``read_timeout`` seconds (slow-loris),
* a bounded number of open connections (``connection_limit``; the rest wait in the backlog)
  and a bounded thread pool; the app's admission answers 503 with ``Retry-After`` when
  ``workers`` requests run and ``max_queue`` wait,
* JSON errors for every path, method and malformed request.

Binds to 127.0.0.1 unless told otherwise. Python 3.8-compatible.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
import time
from typing import Any, Optional, Tuple

from ...errors import ConfigError, MissingDependencyError
from ..predictor import EdgeModel
from .app import MAX_PIXELS, Admission, EdgeApp, HttpError, decode_body, image_bytes
from .openapi import openapi_schema

__all__ = [
    "MAX_PIXELS",
    "Admission",
    "EdgeApp",
    "EdgeServer",
    "HttpError",
    "decode_body",
    "image_bytes",
    "make_server",
    "openapi_schema",
]

log = logging.getLogger(__name__)

#: How far over ``max_bytes`` a body is still read (drained) so that the 413 reaches the
#: client and the keep-alive connection stays usable; beyond, the connection is closed.
DRAIN_BYTES = 1 << 20

_ERROR_TASK = None  # type: Any  # waitress's error task answering JSON, built once


def _json_error_task() -> Any:
    global _ERROR_TASK
    if _ERROR_TASK is None:
        from waitress.task import ErrorTask  # type: ignore[import-untyped]

        class JsonErrorTask(ErrorTask):  # type: ignore[misc]
            """waitress's own error answers (400 malformed request, 413 body over the cap,
            431, 500) in JSON like the app's, not text/plain."""

            def execute(self) -> None:
                err = self.request.error
                body = json.dumps({"error": "{}: {}".format(err.reason, err.body)}).encode()
                self.status = "{} {}".format(err.code, err.reason)
                self.response_headers.append(("Content-Type", "application/json"))
                self.set_close_on_finish()
                self.content_length = len(body)
                self.write(body)

        _ERROR_TASK = JsonErrorTask
    return _ERROR_TASK


def _channel_class(read_timeout: float) -> Any:
    """waitress's HTTP channel with JSON errors and a deadline for reading one request.

    waitress's ``channel_timeout`` closes connections that go silent; a client trickling a
    byte every few seconds never does. Here the whole request (headers and body) must
    arrive within ``read_timeout`` seconds of its first byte, or the connection is closed.
    """
    from waitress.channel import HTTPChannel  # type: ignore[import-untyped]

    class EdgeChannel(HTTPChannel):  # type: ignore[misc]
        error_task_class = _json_error_task()
        _request_started = 0.0

        def received(self, data: bytes) -> bool:
            now = time.monotonic()
            if self.request is None:  # these are the first bytes of a new request
                self._request_started = now
            elif now - self._request_started > read_timeout:
                log.warning(
                    "serve: closing %s: request not complete after %.0f s",
                    self.addr,
                    read_timeout,
                )
                self.will_close = True
                return False
            return bool(super().received(data))

    return EdgeChannel


def _resolve(host: str, port: Any) -> str:
    """The one address to bind for ``host``, or a ConfigError naming the bad option."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError("--port {!r}: must be 0..65535 (0 = any free port)".format(port))
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(
            "--host {!r}: cannot resolve it ({}); use an address of this machine, e.g. "
            "127.0.0.1 (this machine only) or 0.0.0.0 (every interface)".format(
                host, getattr(exc, "strerror", None) or exc
            )
        ) from None
    return str(infos[0][4][0])


def _bind_error(host: str, port: int, exc: OSError) -> ConfigError:
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(
            "--port {}: {}:{} is already in use; stop the other server or pick another "
            "port (--port 0 = any free port)".format(port, host, port)
        )
    if exc.errno == errno.EACCES:
        return ConfigError(
            "--port {}: not allowed to listen there (ports below 1024 need privileges); use "
            "a port >= 1024".format(port)
        )
    return ConfigError(
        "--host {!r}: cannot listen on it ({}); use an address of this machine, e.g. "
        "127.0.0.1 or 0.0.0.0".format(host, exc.strerror or exc)
    )


class EdgeServer:
    """A listening server: ``serve_forever()`` in one thread, ``shutdown()`` from another."""

    def __init__(self, server: Any, app: EdgeApp) -> None:
        self._server = server
        self.app = app
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._serving = False
        self._closed = False

    @property
    def server_address(self) -> Tuple[str, int]:
        return str(self._server.effective_host), int(self._server.effective_port)

    @property
    def url(self) -> str:
        host, port = self.server_address
        return "http://{}:{}".format("[{}]".format(host) if ":" in host else host, port)

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (or KeyboardInterrupt); closes everything on exit."""
        from waitress import wasyncore  # type: ignore[import-untyped]

        self._serving = True
        adj = self._server.adj
        try:
            while not self._stop.is_set():
                wasyncore.loop(
                    timeout=adj.asyncore_loop_timeout, map=self._server._map, use_poll=True, count=1
                )
        finally:
            self._close()
            self._stopped.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop :meth:`serve_forever` and wait until it has closed every connection."""
        self._stop.set()
        if self._serving and not self._stopped.is_set():
            self._server.pull_trigger()
            self._stopped.wait(timeout)
        else:
            self._close()

    def _close(self) -> None:
        from waitress import wasyncore  # type: ignore[import-untyped]

        if self._closed:
            return
        self._closed = True
        self._server.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self._server._map)

    close = server_close = shutdown


def make_server(
    model: EdgeModel,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_bytes: int = 10 * 1024 * 1024,
    top_k: int = 5,
    lock: Optional[Any] = None,
    max_pixels: int = MAX_PIXELS,
    workers: int = 1,
    max_queue: int = 16,
    queue_timeout: float = 10.0,
    timeout: int = 30,
    read_timeout: float = 120.0,
    backlog: int = 512,
    connection_limit: int = 256,
) -> EdgeServer:
    """A listening (not yet serving) server; call ``serve_forever()``. ``port=0`` = any.

    ``workers`` requests decode and infer at once (``lock`` serializes the backend call:
    not every backend is re-entrant), ``max_queue`` more wait up to ``queue_timeout`` s,
    the rest get 503. ``timeout`` closes connections idle (or stalled mid-upload) that
    long, ``read_timeout`` those whose request takes longer than that to arrive. Bodies
    up to :data:`DRAIN_BYTES` over ``max_bytes`` are read and answered 413 on a connection
    that stays usable; larger ones are answered 413 from their headers and the connection
    closed (the server never buffers more than that per connection).
    """
    try:
        from waitress.server import create_server  # type: ignore[import-untyped]
    except ImportError:
        raise MissingDependencyError("waitress", "serve", "caltech-edge serve") from None
    address = _resolve(host, port)
    app = EdgeApp(
        model,
        max_bytes=max_bytes,
        top_k=top_k,
        max_pixels=max_pixels,
        admission=Admission(workers, max_queue, queue_timeout),
        lock=lock,
    )
    try:
        server = create_server(
            app,
            host=address,
            port=port,
            backlog=int(backlog),
            threads=int(workers) + int(max_queue) + 2,  # spare threads for /ping and 503s
            connection_limit=int(connection_limit),
            channel_timeout=max(1, int(timeout)),
            cleanup_interval=max(1, min(30, int(timeout) // 2)),
            max_request_body_size=int(max_bytes) + DRAIN_BYTES,
            expose_tracebacks=False,
            ident="caltech-edge",
        )
    except OSError as exc:
        raise _bind_error(host, port, exc) from None
    except ValueError:  # waitress: "Invalid host/port specified."
        raise _bind_error(host, port, OSError(errno.EADDRNOTAVAIL, "invalid address")) from None
    server.channel_class = _channel_class(float(read_timeout))
    return EdgeServer(server, app)
