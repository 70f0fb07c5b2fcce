"""The toolchain side of the protocol: ``python -m caltech_edge.toolchains.worker``.

Runs inside a toolchain environment (MXNet 1.9.1, numpy < 1.24). It answers requests of
:mod:`.protocol` until stdin closes. Only ``caltech_edge.*`` functions may be called. It also
keeps opened runtimes by handle, so the core can run an MXNet model batch after batch
(verification, benchmarks) without reloading it.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import sys
import traceback
from typing import Any

from . import protocol

_HANDLES: dict[int, Any] = {}
_NEXT = itertools.count(1)


def resolve(target: str) -> Any:
    """``"caltech_edge.x.y:function"`` -> the function; anything outside the package is refused."""
    module, _, attr = target.partition(":")
    if not module.startswith("caltech_edge.") or not attr:
        raise ValueError("the toolchain worker only runs caltech_edge functions, not " + target)
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


# -- calls the core makes on every toolchain ---------------------------------------------
def hello(wait: float = 0.0) -> dict[str, Any]:
    """Who is answering: the interpreter and numpy of the toolchain (a liveness probe).

    ``wait`` keeps the worker busy that many seconds first (to exercise interruption).
    """
    import time

    import numpy

    time.sleep(max(0.0, float(wait)))
    return {
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "pid": os.getpid(),
        "handles": len(_HANDLES),  # objects kept for the core (opened runtimes)
    }


def open_runtime(
    path: str,
    backend: str,
    card: dict[str, Any] | None = None,
    precision_hint: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Open ``path`` with the in-process ``backend`` class; returns a handle and its card."""
    from ..card import ModelCard
    from ..runtime.backends import BACKENDS

    cls = BACKENDS.get(backend)
    rt = cls(
        path,
        card=ModelCard.from_dict(card) if card else None,
        precision_hint=precision_hint,
        threads=threads,
    )
    handle = next(_NEXT)
    _HANDLES[handle] = rt
    return {"handle": handle, "name": rt.name, "card": rt.card.to_dict()}


def infer(handle: int, batch: Any) -> Any:
    return _HANDLES[handle].infer(batch)


def release(handle: int) -> None:
    _HANDLES.pop(handle, None)


def produce(
    producer: str, src: str, dst: str, card: dict[str, Any], options: dict[str, Any]
) -> str:
    """Run an export-format producer (``producer(src, dst, card=..., **options)``) here."""
    from ..card import ModelCard

    return str(resolve(producer)(src, dst, card=ModelCard.from_dict(card), **options))


# -- the loop ----------------------------------------------------------------------------
def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "module": type(exc).__module__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def serve(stdin: Any, reply: Any) -> None:
    for line in stdin:
        if not line.strip():
            continue
        request = protocol.loads(line)
        rid = request.get("id")
        for handle in request.get("release", ()):  # objects the core no longer holds
            _HANDLES.pop(handle, None)
        try:
            result = resolve(request["call"])(**request.get("kwargs", {}))
            message = {"id": rid, "result": result}
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            message = {"id": rid, "error": _error(exc)}
        try:
            text = protocol.dumps(message)
        except TypeError as exc:
            text = protocol.dumps({"id": rid, "error": _error(exc)})
        reply.write(text + "\n")
        reply.flush()


def main() -> int:
    # The protocol owns the real stdout; everything else printed goes to stderr (shared
    # with the core), so a library's print() cannot corrupt a reply.
    reply = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=int(os.environ.get("CALTECH_EDGE_LOG_LEVEL", logging.INFO)),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        serve(sys.stdin, reply)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: leave quietly
        return 130
    return 0


if __name__ == "__main__":
    # run the loop in the importable module, not in __main__: requests resolve
    # "caltech_edge.toolchains.worker:..." to that module, whose _HANDLES must be the same
    from caltech_edge.toolchains import worker as _module

    sys.exit(_module.main())
