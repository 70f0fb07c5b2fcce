"""Preprocessing fused into the OpenVINO graph (PrePostProcessor), for camera-sized frames.

When inference takes ~2 ms (an INT8 IR), converting a 640x480 BGR frame in numpy/OpenCV
costs as much as the network. OpenVINO's PrePostProcessor compiles the same steps into the
model: the raw ``uint8`` NHWC BGR frame goes in, and the graph does the center crop, the
resize, BGR->RGB, ``(x/255 - mean)/std`` and NHWC->NCHW itself, on all cores.

Equivalence with :func:`~caltech_edge.data.transforms.preprocess` (resize the shorter side
to ``resize_size``, then center-crop ``image_size``): the crop is taken first on the frame
(the centred square of side ``min(h, w) * image_size / resize_size``), then resized to
``image_size`` with Pillow-style antialiased bilinear filtering. The pixels differ slightly
from the reference's area interpolation (tests bound the difference and check top-1
agreement), so FP32 parity checks use the unfused path; this is the fast device path.
One compiled model per frame size (cached). Python 3.8-compatible.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from .._registry import require
from ..card import ModelCard
from ..data.transforms import as_rgb
from ..errors import ConfigError
from .backends._card import openvino_card_from_model
from .base import check_precision_hint
from .frames import check_frame, crop_roi
from .predictor import EdgeModel

#: "linear" is fast (no antialiasing); "pillow" (antialiased bilinear) is closer to the
#: reference area interpolation but 4x slower in OpenVINO 2024.6 on this CPU.
RESIZE_ALGORITHMS = {"linear": "RESIZE_LINEAR", "pillow": "RESIZE_BILINEAR_PILLOW"}


def crop_box(
    height: int, width: int, image_size: int, resize_size: int
) -> Tuple[int, int, int, int]:
    """(top, left, bottom, right) of the region that resize-then-center-crop keeps."""
    side = round(min(height, width) * image_size / float(resize_size))
    top = round((height - side) / 2.0)
    left = round((width - side) / 2.0)
    return top, left, top + side, left + side


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
        self._config = {}  # type: Dict[str, Any]
        hint = check_precision_hint(precision_hint)
        if hint is not None:
            self._config["INFERENCE_PRECISION_HINT"] = hint
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled = {}  # type: Dict[Tuple[int, int], Any]

    def _request_for(self, height: int, width: int) -> Any:
        key = (height, width)
        if key not in self._compiled:
            self._compiled[key] = self._build(height, width).create_infer_request()
        return self._compiled[key]

    def _build(self, height: int, width: int) -> Any:
        from openvino.preprocess import ColorFormat, PrePostProcessor, ResizeAlgorithm

        ov = self._ov
        spec = self.card.preprocess
        model = self._model.clone()
        size = spec.image_size
        model.reshape({self.input_name: ov.PartialShape([1, 3, size, size])})
        ppp = PrePostProcessor(model)
        tensor = ppp.input().tensor()
        tensor.set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
        tensor.set_shape([1, height, width, 3]).set_color_format(ColorFormat.BGR)
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        top, left, bottom, right = crop_box(height, width, size, spec.resize_size)
        steps = ppp.input().preprocess()
        steps.crop([0, top, left, 0], [1, bottom, right, 3])
        steps.convert_element_type(ov.Type.f32)
        if spec.channel_order == "RGB":
            steps.convert_color(ColorFormat.RGB)
        steps.resize(getattr(ResizeAlgorithm, RESIZE_ALGORITHMS[self.resize]), size, size)
        mean = [255.0 * m for m in spec.mean]
        std = [255.0 * s for s in spec.std]
        if spec.channel_order == "BGR":
            mean, std = mean[::-1], std[::-1]
        steps.mean(mean).scale(std)
        return self._core.compile_model(ppp.build(), "CPU", self._config)

    def infer_frame(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Raw BGR uint8 HxWx3 frame -> logits (1, num_classes)."""
        frame = np.ascontiguousarray(frame_bgr)
        request = self._request_for(frame.shape[0], frame.shape[1])
        result = request.infer({0: frame[None]})
        return np.array(next(iter(result.values())), dtype=np.float32, copy=True).reshape(1, -1)

    def infer(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - protocol only
        raise NotImplementedError("FusedOpenVino takes raw frames: use infer_frame()")


class FusedEdgeModel(EdgeModel):
    """:class:`EdgeModel` whose preprocessing runs inside the OpenVINO graph."""

    def __init__(self, runtime: FusedOpenVino, *, path: Union[str, Path] = "") -> None:
        super().__init__(runtime, path=path)
        self.info["backend"] = runtime.name

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
