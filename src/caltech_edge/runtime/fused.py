"""Preprocessing fused into the OpenVINO graph (PrePostProcessor), for camera-sized frames.

When inference takes ~2 ms (an INT8 IR), converting a 640x480 BGR frame costs as much as
the network, and nearly all of that is the area-interpolated resize of the whole frame.
The fast path here:

1. takes the center crop *first*, on the uint8 frame (a view: the centred square of side
   ``min(h, w) * image_size / resize_size`` that resize-then-crop would keep);
2. resizes only that square to ``image_size`` with OpenCV on uint8 -- ``resize="linear"``
   (default, ~0.1 ms, not antialiased) or ``"area"`` (the reference interpolation, ~1.2 ms);
3. hands the uint8 NHWC BGR square to the IR, whose PrePostProcessor does BGR->RGB, the
   float conversion, ``(x - 255*mean) / (255*std)`` and NHWC->NCHW inside the compiled graph.

Measured alternatives, kept out: PrePostProcessor's own crop+resize on the full frame was
slower than OpenCV (``RESIZE_LINEAR`` ~1 ms at 640x480, ``RESIZE_BILINEAR_PILLOW`` ~4x
that, OpenVINO 2024.6). The pixels differ slightly from
:func:`~caltech_edge.data.transforms.preprocess` (crop-then-resize rounding, and the
interpolation with ``"linear"``), so parity checks use the unfused path; tests bound the
difference. Python 3.8-compatible.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from .._registry import require
from ..card import ModelCard
from ..data.transforms import as_rgb
from ..errors import ConfigError
from .backends._card import openvino_card_from_model
from .backends.openvino import compile_config
from .frames import (
    RESIZE_ALGORITHMS,
    check_frame,
    crop_box,  # noqa: F401 - re-exported
    crop_resize,
    crop_roi,
)
from .predictor import EdgeModel


class FusedOpenVino:
    """An IR compiled with a PrePostProcessor that eats raw BGR frames of one size."""

    name = "openvino-fused"

    def __init__(
        self,
        path: Union[str, Path],
        *,
        card: Optional[ModelCard] = None,
        precision_hint: Optional[str] = None,
        threads: Optional[int] = None,
        resize: str = "linear",
    ) -> None:
        if resize not in RESIZE_ALGORITHMS:
            raise ConfigError(
                "resize must be one of {}, got {!r}".format(sorted(RESIZE_ALGORITHMS), resize)
            )
        self.resize = resize
        self._ov = require("openvino", "openvino", purpose="fused preprocessing")
        self.path = Path(path)
        self._core = self._ov.Core()
        self._model = self._core.read_model(str(self.path))
        self.card = card if card is not None else openvino_card_from_model(self._model, self.path)
        self.input_name = self._model.inputs[0].get_any_name()
        self._config = compile_config(precision_hint, threads)
        self._request = self._build().create_infer_request()

    def _build(self) -> Any:
        from openvino.preprocess import ColorFormat, PrePostProcessor

        ov = self._ov
        spec = self.card.preprocess
        size = spec.image_size
        model = self._model.clone()
        model.reshape({self.input_name: ov.PartialShape([1, 3, size, size])})
        ppp = PrePostProcessor(model)
        tensor = ppp.input().tensor()
        tensor.set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
        tensor.set_color_format(ColorFormat.BGR)
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        steps = ppp.input().preprocess()
        if spec.channel_order == "RGB":
            steps.convert_color(ColorFormat.RGB)
        steps.convert_element_type(ov.Type.f32)
        mean = [255.0 * m for m in spec.mean]
        std = [255.0 * s for s in spec.std]
        if spec.channel_order == "BGR":
            mean, std = mean[::-1], std[::-1]
        steps.mean(mean).scale(std)
        return self._core.compile_model(ppp.build(), "CPU", self._config)

    def crop_resize(self, frame_bgr: np.ndarray) -> np.ndarray:
        """uint8 BGR frame -> uint8 BGR ``image_size`` square (crop first, then resize)."""
        return crop_resize(frame_bgr, self.card.preprocess, self.resize)

    def infer_frame(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Raw BGR uint8 HxWx3 frame -> logits (1, num_classes)."""
        result = self._request.infer({0: self.crop_resize(frame_bgr)[None]})
        return np.array(next(iter(result.values())), dtype=np.float32, copy=True).reshape(1, -1)

    def infer(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - protocol only
        raise NotImplementedError("FusedOpenVino takes raw frames: use infer_frame()")


class FusedEdgeModel(EdgeModel):
    """:class:`EdgeModel` whose preprocessing runs inside the OpenVINO graph."""

    supports_prefetch = False  # the graph takes raw frames, not preprocessed tensors

    def __init__(self, runtime: FusedOpenVino, *, path: Union[str, Path] = "") -> None:
        super().__init__(runtime, path=path)
        self.info["backend"] = runtime.name

    def _infer_blank(self) -> np.ndarray:
        """The card check's probe as the fused graph takes it: one blank uint8 BGR frame."""
        size = self.spec.image_size
        return self.runtime.infer_frame(np.zeros((size, size, 3), np.uint8))  # type: ignore[attr-defined]

    def predict(
        self, frame_bgr: np.ndarray, top_k: int = 5, roi: Optional[Sequence[float]] = None
    ) -> Dict[str, Any]:
        t0 = time.perf_counter()
        frame = crop_roi(check_frame(frame_bgr), roi)
        if frame.ndim != 3 or frame.shape[2] != 3:  # gray/alpha: normalise to 3-channel BGR
            frame = as_rgb(frame, "BGR")[..., ::-1]
        t1 = time.perf_counter()
        logits = self.runtime.infer_frame(frame)  # type: ignore[attr-defined]
        t2 = time.perf_counter()
        preds = self.postprocess(logits, top_k)[0]
        t3 = time.perf_counter()
        return self._result(preds, (t0, t1, t2, t3), 1)

    def predict_batch(
        self, frames: Sequence[np.ndarray], top_k: int = 5, roi: Optional[Sequence[float]] = None
    ) -> list:
        return [self.predict(f, top_k=top_k, roi=roi) for f in frames]


def load_fused(
    path: Union[str, Path],
    *,
    card: Optional[ModelCard] = None,
    precision_hint: Optional[str] = None,
    threads: Optional[int] = None,
    resize: str = "linear",
) -> FusedEdgeModel:
    """An OpenVINO IR with preprocessing compiled in (see the module docstring)."""
    runtime = FusedOpenVino(
        path, card=card, precision_hint=precision_hint, threads=threads, resize=resize
    )
    return FusedEdgeModel(runtime, path=path)
