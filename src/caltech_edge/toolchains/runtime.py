"""A :class:`~caltech_edge.runtime.base.Runtime` whose model runs inside a toolchain.

``open_runtime("model-symbol.json")`` in the core (no mxnet there) returns one of these: the
worker opens the artifact with the real backend class and keeps it; each ``infer`` ships
the batch over and the logits back. Verification, benchmarks and the CLI use it exactly
like an in-process runtime. (Latency measured through it includes the pipe round trip.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..card import ModelCard
from ..errors import BackendError
from ..runtime.base import check_batch
from .client import Worker, worker

_WORKER = "caltech_edge.toolchains.worker"


class ToolchainRuntime:
    """``backend`` opened in the ``toolchain`` worker; same attributes as a local runtime."""

    def __init__(
        self,
        toolchain: str,
        path: str | Path,
        *,
        backend: str,
        card: ModelCard | None = None,
        precision_hint: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.toolchain = toolchain
        self.path = Path(path)
        self._handle: int | None = None  # set before the call: __del__ runs if it raises
        self._worker: Worker = worker(toolchain)
        reply = self._worker.call(
            _WORKER + ":open_runtime",
            path=str(Path(path).resolve()),
            backend=backend,
            card=card.to_dict() if card is not None else None,
            precision_hint=precision_hint,
            threads=threads,
        )
        self._handle = int(reply["handle"])
        self.name: str = reply["name"]
        self.card = ModelCard.from_dict(reply["card"], source=str(path))
        self.input_name = self.card.input_name or "data"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.card, str(self.path))
        if self._handle is None:
            raise BackendError(f"{self.path}: this runtime was closed")
        return np.asarray(self._worker.call(_WORKER + ":infer", handle=self._handle, batch=batch))

    def close(self) -> None:
        """Free the model in the worker (with the next request; also done on collection)."""
        if self._handle is not None:
            self._worker.garbage.append(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ToolchainRuntime({self.toolchain!r}, {str(self.path)!r}, backend={self.name!r})"


def open_in_toolchain(toolchain: str, path: Any, **kwargs: Any) -> ToolchainRuntime:
    return ToolchainRuntime(toolchain, path, **kwargs)
