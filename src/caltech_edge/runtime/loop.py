"""The device loop (DeepLens' ``infinite_infer_run``): frames -> model -> interpret -> outputs.

One function, :func:`run`, so the CLI (``caltech-edge infer``), the Lambda example and tests
drive the very same code. Every published result gets the next id from a persisted
:class:`~caltech_edge.runtime.buffer.Sequencer` and goes to every publisher; the project
stream and the retraining capture see every inferred frame.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from .buffer import Sequencer
from .capture import RetrainCapture
from .frames import BadFrameError
from .interpret import InterpretConfig, Interpreter
from .payload import make_payload
from .predictor import EdgeModel
from .stream import MjpegStream

log = logging.getLogger(__name__)


def run(
    source: Iterable[Tuple[int, np.ndarray]],
    model: EdgeModel,
    *,
    publishers: Sequence[Any] = (),
    interpret: Optional[InterpretConfig] = None,
    roi: Optional[Sequence[float]] = None,
    sequencer: Optional[Sequencer] = None,
    device: str = "caltech-edge",
    stream: Optional[MjpegStream] = None,
    capture: Optional[RetrainCapture] = None,
    max_frames: Optional[int] = None,
    on_payload: Optional[Callable[[Dict[str, Any]], None]] = None,
    stop: Optional[threading.Event] = None,
) -> Dict[str, Any]:
    """Run until the source ends, ``max_frames`` good frames were read, or ``stop`` is set.

    Returns counters (frames, inferences, published, bad frames, frames/s, per-output
    stats). Publishers are not closed here: the caller flushes them (so an outage at the
    end still delivers) and closes them.
    """
    interpreter = Interpreter(interpret or InterpretConfig())
    sequencer = sequencer or Sequencer()
    cfg = interpreter.config
    frames = inferences = published = bad_roi = 0
    started = time.perf_counter()
    for index, frame in source:
        if stop is not None and stop.is_set():
            break
        if max_frames is not None and frames >= max_frames:
            break
        frames += 1
        if not interpreter.should_infer(index):
            continue
        try:
            result = model.predict(frame, top_k=cfg.top_k, roi=roi)
        except BadFrameError as exc:
            bad_roi += 1
            log.warning("frame %d skipped: %s", index, exc)
            continue
        inferences += 1
        decision = interpreter.update(result)
        shown = decision[0] if decision is not None else result["predictions"]
        if stream is not None:
            stream.write(frame, shown)
        if capture is not None:
            capture.offer(frame, result, name="{}_{:08d}".format(int(time.time()), index))
        if decision is None:
            continue
        smoothed, top, reason = decision
        frame_info = {"index": int(index), "source": str(getattr(source, "name", ""))}
        skipped = getattr(source, "skipped", None)
        if skipped is not None:
            frame_info["skipped_bad"] = int(skipped)
        payload = make_payload(
            dict(result, predictions=smoothed),
            seq=sequencer.next(),
            device=device,
            top=top,
            frame=frame_info,
            reason=reason,
            smoothed_over=interpreter.window,
        )
        for pub in publishers:
            pub.publish(payload)
        if on_payload is not None:
            on_payload(payload)
        published += 1
        if max_frames is not None and frames >= max_frames:
            break
    elapsed = time.perf_counter() - started
    stats = {
        "frames": frames,
        "inferences": inferences,
        "published": published,
        "bad_roi": bad_roi,
        "seconds": round(elapsed, 3),
        "fps": round(frames / elapsed, 2) if elapsed > 0 else 0.0,
        "next_seq": sequencer.peek,
    }  # type: Dict[str, Any]
    if hasattr(source, "stats"):
        stats["source"] = source.stats()  # type: ignore[attr-defined]
    if stream is not None:
        stats["stream"] = stream.stats()
    if capture is not None:
        stats["capture"] = capture.stats()
    return stats
