"""ONNX Runtime backend: the default on the device (it is a core dependency).

Python 3.8-compatible; ``onnxruntime`` is imported only when a model is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..._registry import require
from ...card import ModelCard
from ...errors import BackendError
from ..base import check_batch, own_precision_only
from ._card import onnx_card_from_session


class OnnxRuntime:
    """An ONNX file in an ``InferenceSession`` on the CPU execution provider.

    ``precision_hint`` is accepted for a uniform signature but ONNX Runtime executes the
    graph's own types (an FP32 graph runs in FP32, a QDQ graph in INT8), so only ``None``
    and ``"f32"`` are meaningful.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: Union[str, Path],
        *,
        card: Optional[ModelCard] = None,
        precision_hint: Optional[str] = None,
        threads: Optional[int] = None,
    ) -> None:
        ort = require("onnxruntime", "all", purpose="the onnxruntime backend")
        self.path = Path(path)
        own_precision_only(
            self.path,
            precision_hint,
            "onnxruntime runs the graph's own precision; a precision hint needs the openvino "
            "backend (or export an fp16/int8 artifact)",
        )
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise BackendError(
                "{}: onnxruntime cannot load this model ({}: {})".format(
                    self.path, type(exc).__name__, exc
                )
            ) from exc
        self.card = card if card is not None else onnx_card_from_session(self.session, self.path)
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        self.output_name = self.session.get_outputs()[0].name
        self._fixed_batch = inputs[0].shape[0] if isinstance(inputs[0].shape[0], int) else None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.card, str(self.path))
        if self._fixed_batch == 1 and batch.shape[0] != 1:
            # A static batch-1 graph (the default export): run image by image rather than fail.
            return np.concatenate([self._run(batch[i : i + 1]) for i in range(len(batch))])
        return self._run(batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([self.output_name], {self.input_name: batch})[0])

    def __repr__(self) -> str:
        return "OnnxRuntime({!r})".format(str(self.path))


def raw_call(
    path: Union[str, Path], probe: np.ndarray, threads: Optional[int] = None, loaded: Any = None
) -> Any:
    """A bare ``InferenceSession.run`` on ``probe`` (benchmarks' reference).

    ``loaded``: our runtime for the same file; its session is reused (see litert.raw_call).
    """
    if loaded is not None:
        session = loaded.session
    else:
        ort = require("onnxruntime", "all", purpose="the onnxruntime backend")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(probe, dtype=np.float32)}

    def call() -> Any:
        return session.run(None, feed)

    return call
