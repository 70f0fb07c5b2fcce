"""The seam between the device runtime and whatever executes the network.

A :class:`Runtime` takes a preprocessed NCHW float32 batch and returns raw logits; it knows
nothing about cameras, MQTT or top-k. Every backend (ONNX Runtime, OpenVINO, MXNet) meets
this one protocol, so the predictor, the export verifier and the benchmarks are written
once. Python 3.8-compatible and free of torch/mxnet imports: it runs on the device.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from ..card import ModelCard
from ..errors import BackendError

try:  # Python 3.8 has typing.Protocol; keep a fallback for odd device images anyway
    from typing import Protocol, runtime_checkable
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore

    def runtime_checkable(cls: Any) -> Any:  # type: ignore
        return cls


PRECISION_HINTS = ("f32", "bf16", "f16")


@runtime_checkable
class Runtime(Protocol):
    """A loaded model: ``infer(batch NCHW float32) -> logits (N, num_classes)``.

    ``card`` is the model card read from the artifact (or given explicitly), ``name`` the
    backend name (``"onnxruntime"``, ``"openvino"``, ``"mxnet"``), ``input_name`` the
    graph's input tensor name (``"data"`` for everything caltech-edge exports).
    """

    name: str
    card: ModelCard
    input_name: str

    def infer(self, batch: np.ndarray) -> np.ndarray: ...


def check_batch(batch: Any, card: ModelCard, source: str = "") -> np.ndarray:
    """Validate a batch against the card's input shape; return it as contiguous float32.

    A wrong shape is a caller bug that would otherwise surface as an opaque backend
    message (or, worse, silently broadcast), so it is reported here in plain words.
    """
    arr = np.asarray(batch)
    expected = card.input_shape  # (1, 3, H, W)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or tuple(arr.shape[1:]) != tuple(expected[1:]):
        raise BackendError(
            "{}input batch has shape {}, expected (N, {}, {}, {}) from the model card; "
            "preprocess images with caltech_edge.data.transforms.preprocess(image, card.preprocess)".format(
                source + ": " if source else "", tuple(arr.shape), *expected[1:]
            )
        )
    if arr.shape[0] < 1:
        raise BackendError("{}empty batch".format(source + ": " if source else ""))
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr)


def check_precision_hint(hint: Any) -> Any:
    """``None`` (the device's default) or one of :data:`PRECISION_HINTS`."""
    if hint is None:
        return None
    hint = str(hint).lower()
    aliases = {"fp32": "f32", "float32": "f32", "fp16": "f16", "float16": "f16", "bfloat16": "bf16"}
    hint = aliases.get(hint, hint)
    if hint not in PRECISION_HINTS:
        from ..errors import UnknownNameError

        raise UnknownNameError("precision hint", hint, PRECISION_HINTS)
    return hint


def own_precision_only(path: Any, hint: Any, advice: str) -> None:
    """Refuse a precision hint other than f32 for a backend that runs the file's own precision.

    Only OpenVINO can run one artifact at another precision; every other backend runs what the
    export wrote, so a hint there would be silently ignored. ``advice`` says what to do instead.
    """
    hint = check_precision_hint(hint)
    if hint not in (None, "f32"):
        raise BackendError("{}: {} (got precision_hint={!r})".format(path, advice, hint))


def output_shape(card: ModelCard, batch: int = 1) -> Tuple[int, int]:
    return (batch, card.num_classes)
