"""How often to infer and how to interpret it (the DeepLens case study's lesson).

A camera sees the same object for many frames; a single frame's top-1 flickers. This
module decides which frames to run (every k-th), averages class probabilities over the last
N inferences, applies a minimum confidence (below it the answer is "nothing", ``top=None``)
and decides when a result is worth publishing: on every inference, when the answer
changes, or at a fixed interval (``interval_s``, also a heartbeat in "change" mode).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import ConfigError

PUBLISH_MODES = ("every", "change", "interval")


@dataclass(frozen=True)
class InterpretConfig:
    every: int = 1  # run the model on every k-th good frame
    smooth: int = 1  # average probabilities over the last N inferences
    min_confidence: float = 0.0  # below this the smoothed top-1 is reported as None
    publish: str = "every"  # every | change | interval
    interval_s: float = 0.0  # "interval": seconds between publishes; "change": heartbeat (0=off)
    top_k: int = 5

    def __post_init__(self) -> None:
        if int(self.every) < 1 or int(self.smooth) < 1 or int(self.top_k) < 1:
            raise ConfigError("every, smooth and top_k must be >= 1")
        if not 0.0 <= float(self.min_confidence) <= 1.0:
            raise ConfigError(
                "min_confidence must be in [0, 1], got {}".format(self.min_confidence)
            )
        if self.publish not in PUBLISH_MODES:
            raise ConfigError(
                "publish mode must be one of {}, got {!r}".format(PUBLISH_MODES, self.publish)
            )
        if self.publish == "interval" and float(self.interval_s) <= 0:
            raise ConfigError("publish='interval' needs interval_s > 0")


Decision = Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]], str]


class Interpreter:
    """Stateful: feed it each inference result, get back what to publish (or None)."""

    def __init__(
        self,
        config: Optional[InterpretConfig] = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or InterpretConfig()
        self._window = collections.deque(maxlen=int(self.config.smooth))  # type: Deque[List[Dict[str, Any]]]
        self._clock = clock
        self._last_top = "<unset>"  # type: Any
        self._last_time = None  # type: Optional[float]
        self.inferences = 0
        self.published = 0

    def should_infer(self, frame_index: int) -> bool:
        return frame_index % int(self.config.every) == 0

    def smooth(self, predictions: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Mean probability per class over the window (classes missing from a top-k count 0)."""
        self._window.append(predictions)
        totals = {}  # type: Dict[int, float]
        labels = {}  # type: Dict[int, str]
        for preds in self._window:
            for p in preds:
                totals[p["index"]] = totals.get(p["index"], 0.0) + float(p["probability"])
                labels[p["index"]] = p["label"]
        n = float(len(self._window))
        ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[: int(self.config.top_k)]
        return [
            {"label": labels[i], "index": i, "probability": round(total / n, 6)}
            for i, total in ranked
        ]

    def update(self, result: Dict[str, Any]) -> Optional[Decision]:
        """(smoothed predictions, top or None, reason) when this result should be published."""
        self.inferences += 1
        smoothed = self.smooth(result["predictions"])
        best = smoothed[0] if smoothed else None
        top = (
            best if best is not None and best["probability"] >= self.config.min_confidence else None
        )
        now = self._clock()
        mode = self.config.publish
        elapsed = None if self._last_time is None else now - self._last_time
        reason = None
        if mode == "every":
            reason = "every"
        elif mode == "interval":
            if elapsed is None or elapsed >= self.config.interval_s:
                reason = "interval"
        else:
            label = top["label"] if top is not None else None
            if label != self._last_top:
                reason = "change"
            elif (
                self.config.interval_s > 0
                and elapsed is not None
                and elapsed >= self.config.interval_s
            ):
                reason = "interval"
        if reason is None:
            return None
        self._last_top = top["label"] if top is not None else None
        self._last_time = now
        self.published += 1
        return smoothed, top, reason

    @property
    def window(self) -> int:
        return len(self._window)
