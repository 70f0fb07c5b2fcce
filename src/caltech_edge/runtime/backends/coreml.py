"""Core ML backend: an ``.mlpackage`` (ML Program) on macOS / the Apple Neural Engine.

``coremltools`` reads and writes Core ML files anywhere, but only macOS has the Core ML
framework that *runs* them: off macOS opening this backend raises one line saying so, and
the export is checked structurally instead (:func:`coreml_card`, the package step).

On macOS the model's ImageType input applies the card's scale/bias itself, so the
library's preprocessed NCHW batch is turned back into the RGB image the model expects
(exact: normalisation is affine), and the classifier's probability dictionary is returned
in card order as log-probabilities, whose softmax is the model's own probabilities.
Not run on this project's Linux CI (no macOS there); see docs/devices.md. Python 3.8-compatible.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..._registry import require
from ...card import METADATA_KEY, ModelCard
from ...errors import BackendError
from ..base import check_batch
from ._card import _fallback, card_from_metadata


def coreml_card(path: Union[str, Path], model: Any = None) -> ModelCard:
    """The card in the mlpackage's user-defined metadata, else its sidecar (any OS)."""
    path = Path(path)
    if model is None:
        ct = require("coremltools", "coreml", purpose="reading a Core ML model")
        model = ct.models.MLModel(str(path), skip_model_load=True)
    meta = dict(model.user_defined_metadata)
    card = card_from_metadata(meta, str(path)) if METADATA_KEY in meta else None
    return card if card is not None else _fallback(path, "Core ML user-defined metadata")


class CoreMlRuntime:
    """An mlpackage run by Core ML (macOS only); ``infer`` returns log-probabilities."""

    name = "coreml"

    def __init__(
        self,
        path: Union[str, Path],
        *,
        card: Optional[ModelCard] = None,
        precision_hint: Optional[str] = None,
        threads: Optional[int] = None,
    ) -> None:
        self.path = Path(path)
        if sys.platform != "darwin":
            raise BackendError(
                "{}: Core ML models run only on macOS/iOS (the Core ML framework is Apple's); "
                "copy the coreml bundle to a Mac and run caltech-edge infer there".format(self.path)
            )
        ct = require("coremltools", "coreml", purpose="the coreml backend")
        units = ct.ComputeUnit.CPU_ONLY if precision_hint == "f32" else ct.ComputeUnit.ALL
        self.model = ct.models.MLModel(str(self.path), compute_units=units)
        self.card = card if card is not None else coreml_card(self.path, self.model)
        spec = self.model.get_spec()
        self.input_name = spec.description.input[0].name
        self._probs_name = spec.description.predictedProbabilitiesName

    def _image(self, chw: np.ndarray) -> Any:
        from PIL import Image

        spec = self.card.preprocess
        mean = np.asarray(spec.mean, np.float32)[:, None, None]
        std = np.asarray(spec.std, np.float32)[:, None, None]
        rgb = np.clip(np.rint((chw * std + mean) * 255.0), 0, 255).astype(np.uint8)
        if spec.channel_order == "BGR":
            rgb = rgb[::-1]
        return Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 2, 0)), "RGB")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.card, str(self.path))
        rows = []
        for chw in batch:
            out = self.model.predict({self.input_name: self._image(chw)})
            probs = out[self._probs_name]
            p = np.array([probs.get(n, 0.0) for n in self.card.class_names], np.float64)
            rows.append(np.log(np.maximum(p, 1e-12)))
        return np.asarray(rows, dtype=np.float32)

    def __repr__(self) -> str:
        return "CoreMlRuntime({!r})".format(str(self.path))
