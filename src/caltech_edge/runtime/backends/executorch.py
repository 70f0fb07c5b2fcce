"""ExecuTorch backend: a ``.pte`` program (XNNPACK-lowered, FP32 or INT8) on Arm or x86.

``executorch.runtime`` is ExecuTorch's own Python binding of the C++ runtime a Raspberry
Pi or an Arm board runs. It takes torch tensors, so this backend (unlike ``litert``) needs
torch on the device; ``torch.from_numpy`` shares the batch's memory, so nothing is copied.
A .pte has no slot for free-form metadata: the card is the sidecar ``<stem>.card.json``
the export writes (or ``card.json`` beside it). INT8 programs from the XNNPACK quantizer
take and return float tensors (quantize/dequantize are inside the graph).
Python 3.8-compatible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..._registry import require
from ...card import ModelCard
from ...errors import BackendError
from ..base import check_batch, own_precision_only
from ._card import _fallback


def set_threads(threads: int) -> None:
    """Resize ExecuTorch's own thread pool (XNNPACK does not follow torch's setting)."""
    try:
        from executorch.extension.pybindings import portable_lib
    except ImportError:  # pragma: no cover - a build without the pybindings helper
        return
    reset = getattr(portable_lib, "_unsafe_reset_threadpool", None)
    if reset is not None and portable_lib._threadpool_get_thread_count() != threads:
        reset(threads)


class ExecuTorchRuntime:
    """The ``forward`` method of a .pte loaded by ``executorch.runtime.Runtime``."""

    name = "executorch"

    def __init__(
        self,
        path: Union[str, Path],
        *,
        card: Optional[ModelCard] = None,
        precision_hint: Optional[str] = None,
        threads: Optional[int] = None,
    ) -> None:
        self.path = Path(path)
        own_precision_only(
            self.path,
            precision_hint,
            "ExecuTorch runs the program's own precision; export executorch-int8 instead",
        )
        runtime_mod = require("executorch.runtime", "executorch", purpose="the executorch backend")
        self._torch = require("torch", "executorch", purpose="ExecuTorch's Python runtime")
        if threads:
            set_threads(int(threads))
        self.card = card if card is not None else _fallback(self.path, ".pte program")
        try:
            program = runtime_mod.Runtime.get().load_program(self.path)
            self.method = program.load_method("forward")
        except (RuntimeError, ValueError) as exc:
            raise BackendError(
                "{}: ExecuTorch cannot load this program ({})".format(self.path, exc)
            ) from exc
        if self.method is None:
            raise BackendError("{}: the program has no 'forward' method".format(self.path))
        meta = self.method.metadata
        self.input_name = self.card.input_name
        sizes = tuple(meta.input_tensor_meta(0).sizes())
        if sizes[1:] != tuple(self.card.input_shape[1:]):
            raise BackendError(
                "{}: the program takes {} but the card says {}; the card does not belong to "
                "this model".format(self.path, sizes, self.card.input_shape)
            )

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.card, str(self.path))
        outs = []
        for i in range(len(batch)):  # .pte programs are exported with a static batch of 1
            x = self._torch.from_numpy(batch[i : i + 1])
            outs.append(self.method.execute([x])[0].numpy())
        return np.concatenate(outs).reshape(len(batch), -1).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return "ExecuTorchRuntime({!r})".format(str(self.path))


def raw_call(
    path: Union[str, Path], probe: np.ndarray, threads: Optional[int] = None, loaded: Any = None
) -> Any:
    """The bare ``method.execute`` on ``probe`` (benchmarks' reference: no library code).

    ``loaded``: our runtime for the same file; its method is reused (see litert.raw_call).
    """
    runtime_mod = require("executorch.runtime", "executorch", purpose="the executorch backend")
    torch = require("torch", "executorch", purpose="ExecuTorch's Python runtime")
    if threads:
        set_threads(int(threads))
    if loaded is not None:
        method = loaded.method
    else:
        method = runtime_mod.Runtime.get().load_program(Path(path)).load_method("forward")
    x = [torch.from_numpy(np.ascontiguousarray(probe, dtype=np.float32))]

    def call() -> Any:
        return method.execute(x)

    return call
