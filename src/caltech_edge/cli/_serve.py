"""``caltech-edge serve``: a model over HTTP (``caltech_edge.runtime.serve``).

Registered by ``cli/runtime.py`` (so device bundles, which run only that command module,
keep it); parsing and wiring only. Python 3.8-compatible, like the rest of the device CLI.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from typing import Any


def register_serve(sub: Any, model_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``serve`` sub-parser; ``model_args`` adds the options it shares with ``infer``."""
    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP: POST /predict or /invocations with an image, GET /health, "
        "/ping, /openapi.json",
        description="An HTTP endpoint on waitress (pip install 'caltech-edge[serve]'): backlog, "
        "timeouts, bounded concurrency (503 + Retry-After when saturated), JSON errors; the "
        "SageMaker contract (POST /invocations, GET /ping) beside /predict and /health.",
    )
    model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=8080, help="0..65535 (0 = any free port)")
    p.add_argument(
        "--max-bytes", type=int, default=10 * 1024 * 1024, help="request body limit (413 above)"
    )
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--workers", type=int, default=1, help="requests decoded and classified at once")
    p.add_argument(
        "--max-queue", type=int, default=16, help="requests waiting beyond --workers; then 503"
    )
    p.add_argument(
        "--queue-timeout",
        type=float,
        default=10.0,
        help="seconds a queued request waits for a worker before 503",
    )
    p.add_argument(
        "--timeout",
        type=int,
        default=30,
        help="seconds before an idle or stalled connection closes",
    )
    p.add_argument(
        "--read-timeout",
        type=float,
        default=120.0,
        help="seconds one request (headers and body) may take to arrive",
    )
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import signal

    from ..runtime.predictor import load_model
    from ..runtime.serve import make_server

    model = load_model(
        args.model, backend=args.backend, precision_hint=args.precision_hint, threads=args.threads
    )
    server = make_server(
        model,
        host=args.host,
        port=args.port,
        max_bytes=args.max_bytes,
        top_k=args.top_k,
        workers=args.workers,
        max_queue=args.max_queue,
        queue_timeout=args.queue_timeout,
        timeout=args.timeout,
        read_timeout=args.read_timeout,
    )
    # docker stop / systemd send SIGTERM: close connections cleanly, exit 0
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(
        f"serving {model.path} on {server.url} (POST /predict, POST /invocations, GET /health, "
        "GET /ping, GET /openapi.json)",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.shutdown()
    return 0
