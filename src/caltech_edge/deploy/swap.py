"""The live model behind one reference, so a deployment swaps it between two frames.

:class:`SwappableModel` looks like an :class:`~caltech_edge.runtime.predictor.EdgeModel`
to the device loop. Each ``predict`` call reads the reference once, so a frame is inferred
entirely by the old model or entirely by the new one (already loaded and self-tested in
another thread): no frame is dropped, no result comes from a half-loaded model, and every
result's ``model.hash`` names the model that produced it.

After a swap the new model is on probation for ``probation_frames`` results: an exception
(the frame is then re-run on the previous model, so it is not lost), an error rate above
``max_error_rate`` or a mean top-1 probability below ``collapse_ratio`` times the previous
model's recent mean rolls it back. ``on_verdict(passed, reason)`` reports the outcome.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence

import numpy as np

from ..runtime.frames import BadFrameError

log = logging.getLogger(__name__)
Verdict = Callable[[bool, str], None]


class _Probation:
    def __init__(
        self, previous: Any, frames: int, baseline: float, on_verdict: Optional[Verdict]
    ) -> None:
        self.previous = previous
        self.frames = int(frames)
        self.baseline = float(baseline)
        self.on_verdict = on_verdict
        self.results = 0
        self.errors = 0
        self.confidence = 0.0


class SwappableModel:
    """An EdgeModel stand-in whose model can be replaced (and rolled back) between frames."""

    def __init__(
        self,
        model: Any,
        *,
        keep_frames: int = 8,
        collapse_ratio: float = 0.5,
        max_error_rate: float = 0.0,
        baseline_window: int = 50,
    ) -> None:
        self._model = model
        self._lock = threading.Lock()
        self._probation: Optional[_Probation] = None
        self.collapse_ratio = float(collapse_ratio)
        self.max_error_rate = float(max_error_rate)
        self.kept: Deque[Any] = collections.deque(maxlen=max(1, int(keep_frames)))
        self._recent: Deque[float] = collections.deque(maxlen=max(1, int(baseline_window)))
        self.swaps = 0
        self.rollbacks = 0

    # -- what the loop reads ------------------------------------------------------------
    @property
    def current(self) -> Any:
        return self._model

    def __getattr__(self, name: str) -> Any:  # info, card, labels, spec, path, backend ...
        return getattr(self._model, name)

    @property
    def supports_prefetch(self) -> bool:
        return bool(getattr(self._model, "supports_prefetch", True))

    def preprocess(
        self, frame_bgr: np.ndarray, roi: Optional[Sequence[float]] = None
    ) -> np.ndarray:
        # every candidate passed the card check: same input contract, so any model's
        # preprocessing is the right one for whichever model infers the tensor
        return self._model.preprocess(frame_bgr, roi)

    def predict(
        self, frame_bgr: np.ndarray, top_k: int = 5, roi: Optional[Sequence[float]] = None
    ) -> Dict[str, Any]:
        self.kept.append(("frame", frame_bgr, roi))
        return self._run(lambda m: m.predict(frame_bgr, top_k=top_k, roi=roi))

    def predict_tensor(
        self, chw: np.ndarray, top_k: int = 5, preprocess_ms: float = 0.0
    ) -> Dict[str, Any]:
        self.kept.append(("tensor", chw, None))
        return self._run(lambda m: m.predict_tensor(chw, top_k=top_k, preprocess_ms=preprocess_ms))

    def predict_batch(
        self, frames: Sequence[np.ndarray], top_k: int = 5, roi: Optional[Sequence[float]] = None
    ) -> List[Dict[str, Any]]:
        return [self.predict(f, top_k=top_k, roi=roi) for f in frames]

    def _run(self, call: Callable[[Any], Dict[str, Any]]) -> Dict[str, Any]:
        model, probation = self._model, self._probation  # one read: one model per frame
        try:
            result = call(model)
        except BadFrameError:
            raise
        except Exception as exc:
            if probation is None or model is not self._model:
                raise
            probation.errors += 1
            seen = probation.results + probation.errors
            log.warning("deployed model failed on a frame (%s); re-run on the previous one", exc)
            if probation.errors / seen > self.max_error_rate:
                self._finish(False, f"model raised {type(exc).__name__}: {exc}")
            return call(probation.previous)
        self._observe(model, probation, result)
        return result

    def _observe(self, model: Any, probation: Optional[_Probation], result: Dict[str, Any]) -> None:
        preds = result.get("predictions") or []
        top1 = float(preds[0]["probability"]) if preds else 0.0
        if probation is None or probation is not self._probation:
            self._recent.append(top1)
            return
        probation.results += 1
        probation.confidence += top1
        if probation.results < probation.frames:
            return
        mean = probation.confidence / probation.results
        floor = self.collapse_ratio * probation.baseline
        if mean < floor:
            self._finish(
                False,
                f"confidence collapse: mean top-1 {mean:.3f} < {floor:.3f} ({self.collapse_ratio} x previous {probation.baseline:.3f})",
            )
        else:
            self._finish(
                True, f"probation passed: mean top-1 {mean:.3f} over {probation.results} results"
            )

    # -- what the deployment agent calls ------------------------------------------------
    def baseline(self) -> float:
        return float(np.mean(self._recent)) if self._recent else 0.0

    def swap(
        self, model: Any, *, probation_frames: int = 0, on_verdict: Optional[Verdict] = None
    ) -> Any:
        """Make ``model`` live from the next frame on; returns the model it replaced."""
        with self._lock:
            previous = self._model
            if probation_frames > 0:
                self._probation = _Probation(
                    previous, probation_frames, self.baseline(), on_verdict
                )
            else:
                self._probation = None
            self._model = model
            self._recent.clear()
            self.swaps += 1
        if probation_frames <= 0 and on_verdict is not None:
            on_verdict(True, "swapped (no probation)")
        return previous

    def _finish(self, passed: bool, reason: str) -> None:
        with self._lock:
            probation = self._probation
            if probation is None:
                return
            self._probation = None
            if not passed:
                self._model = probation.previous
                self.rollbacks += 1
        if probation.on_verdict is not None:
            probation.on_verdict(passed, reason)

    @property
    def on_probation(self) -> bool:
        return self._probation is not None

    def sample(self) -> List[Any]:
        """The frames kept for self-testing a candidate (oldest first)."""
        return list(self.kept)
