"""The core side of the protocol: start a worker in a toolchain, call functions there.

``call("mxnet", "caltech_edge.frameworks.gluon_remote:train", config=..., ...)`` builds the
environment if needed (:func:`.env.ensure`), starts one long-lived worker per toolchain,
sends the request and returns the result. The worker's stderr is the core's stderr, so
logs and progress bars show as they happen. An error comes back as the same
:class:`~caltech_edge.errors.CaltechEdgeError` subclass with the same message; anything
else as a :class:`~caltech_edge.errors.ToolchainError` naming the original type. Ctrl-C
stops the child and propagates as ``KeyboardInterrupt``.

The worker imports the core's *own* ``caltech_edge`` source (a link to this package's
folder is the only entry on its ``PYTHONPATH``), so both sides always run the same code,
whatever the checkout, and the environment never holds a stale copy of it.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import logging
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

from .. import errors
from ..errors import CaltechEdgeError, ToolchainError
from . import protocol
from .env import cache_root, ensure
from .table import get_toolchain

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent.parent  # .../caltech_edge


def source_path() -> Path:
    """A folder whose only entry is a link to this ``caltech_edge`` package (the worker's path).

    Putting the package's parent folder on the path instead would also expose whatever sits
    beside it (the core's numpy 2 in a site-packages install), which the toolchain must not see.
    """
    digest = hashlib.sha256(str(_PACKAGE).encode("utf-8")).hexdigest()[:12]
    folder = cache_root() / ".src" / digest
    link = folder / "caltech_edge"
    if link.resolve() != _PACKAGE:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".caltech_edge.{os.getpid()}"
        try:
            if tmp.is_symlink():
                tmp.unlink()
            tmp.symlink_to(_PACKAGE, target_is_directory=True)
            os.replace(str(tmp), str(link))
        except OSError:  # no symlinks (some Windows set-ups): fall back to the parent folder
            return _PACKAGE.parent
    return folder


def rebuild_error(toolchain: str, error: dict[str, Any]) -> BaseException:
    """The exception the core raises for an ``error`` reply (same class when it is ours)."""
    cls = getattr(errors, str(error.get("type")), None)
    message = str(error.get("message", ""))
    if isinstance(cls, type) and issubclass(cls, CaltechEdgeError):
        exc = cls.__new__(cls)  # subclasses' own __init__ take structured arguments
        Exception.__init__(exc, message)
        return exc
    return ToolchainError(
        "{} in toolchain {!r}: {}".format(
            error.get("type"), toolchain, message.splitlines()[0] if message else ""
        )
    )


class Worker:
    """One worker process in a toolchain environment, answering calls one at a time."""

    def __init__(self, toolchain: str, *, python: str | Path | None = None) -> None:
        """``python``: run the worker with this interpreter instead of the toolchain's own."""
        self.toolchain = toolchain
        python = python or ensure(get_toolchain(toolchain))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(
            PYTHONPATH=str(source_path()),
            PYTHONNOUSERSITE="1",
            PYTHONUNBUFFERED="1",
            CALTECH_EDGE_LOG_LEVEL=str(logging.getLogger().getEffectiveLevel()),
        )
        self.proc = subprocess.Popen(
            [str(python), "-m", "caltech_edge.toolchains.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            universal_newlines=True,
            encoding="utf-8",
        )
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        #: handles of remote objects no longer needed, freed with the next request (a
        #: finalizer must not make a call itself: it may run inside one, holding the lock)
        self.garbage: list[int] = []
        log.debug("toolchain %s: worker pid %d (%s)", toolchain, self.proc.pid, python)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, target: str, **kwargs: Any) -> Any:
        """Run ``target(**kwargs)`` in the toolchain and return its result."""
        with self._lock:
            rid = next(self._ids)
            request: dict[str, Any] = {"id": rid, "call": target, "kwargs": kwargs}
            if self.garbage:
                request["release"], self.garbage = self.garbage, []
            try:
                assert self.proc.stdin is not None and self.proc.stdout is not None
                self.proc.stdin.write(protocol.dumps(request))
                self.proc.stdin.write("\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
            except KeyboardInterrupt:
                self.close(interrupt=True)
                raise
            except BrokenPipeError:
                line = ""
            if not line:
                code = self.proc.wait()
                raise ToolchainError(
                    f"the {self.toolchain} toolchain worker exited (code {code}) during {target}; its messages are "
                    f"above; rebuild it with: caltech-edge toolchain install {self.toolchain} --force"
                )
            reply = protocol.loads(line)
        if "error" in reply:
            log.debug("toolchain %s: remote traceback\n%s", self.toolchain,
                      reply["error"].get("traceback", ""))  # fmt: skip
            raise rebuild_error(self.toolchain, reply["error"])
        return reply.get("result")

    def close(self, *, interrupt: bool = False, timeout: float = 10.0) -> None:
        """End the worker: close its stdin (or SIGINT it), then kill it if it lingers."""
        if not self.alive:
            return
        try:
            if interrupt and hasattr(signal, "SIGINT"):
                self.proc.send_signal(signal.SIGINT)
            elif self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


_WORKERS: dict[str, Worker] = {}


def worker(toolchain: str) -> Worker:
    """The live worker of ``toolchain``, started on first use and reused afterwards."""
    current: Worker | None = _WORKERS.get(toolchain)
    if current is None or not current.alive:
        current = _WORKERS[toolchain] = Worker(toolchain)
    return current


def call(toolchain: str, target: str, **kwargs: Any) -> Any:
    """Run ``target`` (``"caltech_edge.module:function"``) with ``kwargs`` inside ``toolchain``."""
    return worker(toolchain).call(target, **kwargs)


@atexit.register
def shutdown() -> None:
    """Stop every worker (at exit, or from tests)."""
    while _WORKERS:
        _WORKERS.popitem()[1].close()
