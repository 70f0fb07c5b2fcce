"""OpenVINO backend: IR ``.xml``/``.bin`` (FP32, FP16 or INT8) compiled for the CPU.

On CPUs with AMX (this build machine) OpenVINO executes an FP32 IR in bf16 unless told
otherwise. ``precision_hint=None`` keeps the device default (fast); ``"f32"`` forces
FP32 arithmetic, which parity checks of FP32 artifacts need. Python 3.8-compatible;
``openvino`` is imported only when a model is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from ..._registry import require
from ...card import ModelCard
from ...errors import BackendError, CaltechEdgeError
from ..base import check_batch, check_precision_hint
from ._card import openvino_card_from_model


def compile_config(precision_hint: Optional[str], threads: Optional[int]) -> Dict[str, Any]:
    """OpenVINO CPU properties for a precision hint ("f32" for parity checks) and threads."""
    config = {}  # type: Dict[str, Any]
    hint = check_precision_hint(precision_hint)
    if hint is not None:
        config["INFERENCE_PRECISION_HINT"] = hint
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


class OpenVinoRuntime:
    """An IR compiled on ``device`` (default "CPU") with an optional inference precision hint."""

    name = "openvino"

    def __init__(
        self,
        path: Union[str, Path],
        *,
        card: Optional[ModelCard] = None,
        precision_hint: Optional[str] = None,
        threads: Optional[int] = None,
        device: str = "CPU",
    ) -> None:
        ov = require("openvino", "openvino", purpose="the openvino backend")
        self.path = Path(path)
        self.precision_hint = check_precision_hint(precision_hint)
        config = compile_config(precision_hint, threads)
        try:
            core = ov.Core()
            model = core.read_model(str(self.path))
            self.card = card if card is not None else openvino_card_from_model(model, self.path)
            if model.inputs[0].get_partial_shape().is_dynamic:
                # Fix the spatial size from the card; keep the batch dimension dynamic.
                shape = ov.PartialShape([-1, *self.card.input_shape[1:]])
                model.reshape({model.inputs[0].get_any_name(): shape})
            self.compiled = core.compile_model(model, device, config)
        except CaltechEdgeError:
            raise
        except Exception as exc:
            raise BackendError(
                "{}: OpenVINO cannot load or compile this IR on {} ({}: {})".format(
                    self.path, device, type(exc).__name__, exc
                )
            ) from exc
        self.input_name = self.compiled.inputs[0].get_any_name()
        self._output = self.compiled.outputs[0]
        self._request = self.compiled.create_infer_request()
        first = self.compiled.inputs[0].get_partial_shape()[0]
        self._fixed_batch = first.get_length() if first.is_static else None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.card, str(self.path))
        if self._fixed_batch == 1 and batch.shape[0] != 1:
            return np.concatenate([self._run(batch[i : i + 1]) for i in range(len(batch))])
        return self._run(batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        result = self._request.infer({0: batch})
        return np.array(result[self._output], dtype=np.float32, copy=True)

    def __repr__(self) -> str:
        return "OpenVinoRuntime({!r}, precision_hint={!r})".format(
            str(self.path), self.precision_hint
        )
