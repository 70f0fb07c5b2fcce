"""Run LiteRT and ExecuTorch artifacts for verification when no runtime backend does yet.

Verification prefers :func:`caltech_edge.runtime.backends.open_runtime` (the ``litert``
and ``executorch`` backends of the device runtime); :func:`open_for_verify` falls back to
these bare interpreter calls only for a backend name the registry does not know, so an
export can be checked even where the device runtime is older than the export code. They
meet the same :class:`~caltech_edge.runtime.base.Runtime` protocol: NCHW float32 batch in,
logits out; NHWC inputs are transposed and int8/uint8 tensors are (de)quantized with the
tensor's own scale and zero point.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..card import ModelCard, card_for
from ..errors import BackendError
from ..runtime.base import Runtime, check_batch


def quantize_to(x: np.ndarray, dtype: Any, scale: float, zero_point: int) -> np.ndarray:
    """Float -> integer tensor with the tensor's own parameters (round half to even)."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (x.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


class LiteRtRunner:
    """A ``.tflite`` in ``ai_edge_litert``'s Interpreter, one image per invoke (static batch)."""

    name = "litert"

    def __init__(self, path: Path, *, card: ModelCard | None = None, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        from .tflite_metadata import read_tflite_card

        self.path = Path(path)
        self.card = card or read_tflite_card(self.path) or card_for(self.path)
        self.interpreter = Interpreter(str(self.path), num_threads=threads or 2)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self.input_name = str(self._in["name"])
        shape = tuple(int(s) for s in self._in["shape"])
        self.nhwc = len(shape) == 4 and shape[-1] == 3 and shape[1] != 3

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.card, str(self.path))
        return np.concatenate([self._one(batch[i : i + 1]) for i in range(len(batch))])

    def _one(self, x: np.ndarray) -> np.ndarray:
        if self.nhwc:
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        dtype = self._in["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zero = self._in["quantization"]
            x = quantize_to(x, dtype, scale, zero)
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self._out["index"])
        if np.issubdtype(y.dtype, np.integer):
            y = dequantize(y, *self._out["quantization"])
        return np.asarray(y, dtype=np.float32).reshape(1, -1)


class ExecuTorchRunner:
    """A ``.pte`` through ``executorch.runtime`` (its Python binding returns torch tensors)."""

    name = "executorch"

    def __init__(self, path: Path, *, card: ModelCard | None = None, threads: int | None = None):
        import torch
        from executorch.runtime import Runtime as EtRuntime

        self._torch = torch
        self.path = Path(path)
        self.card = card or card_for(self.path)
        self.method = EtRuntime.get().load_program(str(self.path)).load_method("forward")
        self.input_name = "data"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.card, str(self.path))
        outs = []
        for i in range(len(batch)):
            out = self.method.execute([self._torch.from_numpy(batch[i : i + 1])])[0]
            outs.append(np.asarray(out.detach().float().numpy()).reshape(1, -1))
        return np.concatenate(outs)


RUNNERS: dict[str, Callable[..., Any]] = {"litert": LiteRtRunner, "executorch": ExecuTorchRunner}


def open_for_verify(
    path: str | Path,
    *,
    backend: str | None,
    card: ModelCard | None = None,
    precision_hint: str | None = None,
) -> Runtime:
    """The registered runtime backend when there is one, else the bare runner above."""
    from ..runtime.backends import BACKENDS, open_runtime

    if backend is None or backend in BACKENDS:
        return open_runtime(path, backend=backend, card=card, precision_hint=precision_hint)
    if backend not in RUNNERS:
        raise BackendError(f"{path}: no runtime backend or verification runner for {backend!r}")
    return RUNNERS[backend](Path(path), card=card)
