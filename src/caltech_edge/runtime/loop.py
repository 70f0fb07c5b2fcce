"""The device loop (DeepLens' ``infinite_infer_run``): frames -> model -> interpret -> outputs.

One function, :func:`run`, so the CLI (``caltech-edge infer``), the Lambda example and tests
drive the very same code. Every published result gets the next id from a persisted
:class:`~caltech_edge.runtime.buffer.Sequencer` and goes to every publisher; the project
stream and the retraining capture see every inferred frame.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Sequence, Tuple

import numpy as np

from .buffer import Sequencer
from .capture import RetrainCapture
from .frames import BadFrameError
from .interpret import InterpretConfig, Interpreter
from .payload import make_payload
from .predictor import EdgeModel
from .stream import MjpegStream

log = logging.getLogger(__name__)


def _plain(source: Iterable[Tuple[int, np.ndarray]]) -> Iterator[Tuple[int, np.ndarray, Any]]:
    for index, frame in source:
        yield index, frame, None


class _Prefetch:
    """Reads + preprocesses frames in a background thread, one frame ahead (bounded queue)."""

    _END = object()

    def __init__(self, source: Any, model: EdgeModel, interpreter: Interpreter, roi: Any) -> None:
        self._queue = queue.Queue(maxsize=2)  # type: queue.Queue
        self._stop = threading.Event()
        self._error = None  # type: Optional[BaseException]
        self._thread = threading.Thread(
            target=self._work, args=(source, model, interpreter, roi), daemon=True
        )
        self._thread.start()

    def _work(self, source: Any, model: EdgeModel, interpreter: Interpreter, roi: Any) -> None:
        try:
            for index, frame in source:
                if self._stop.is_set():
                    break
                chw = None  # type: Any
                if interpreter.should_infer(index):
                    t0 = time.perf_counter()
                    try:
                        x = model.preprocess(frame, roi)
                        chw = (x, (time.perf_counter() - t0) * 1e3)
                    except BadFrameError as exc:
                        chw = exc
                self._put((index, frame, chw))
        except BaseException as exc:  # re-raised in the consuming thread
            self._error = exc
        finally:
            self._put(self._END)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> "_Prefetch":
        return self

    def __next__(self) -> Tuple[int, np.ndarray, Any]:
        item = self._queue.get()
        if item is self._END:
            if self._error is not None:
                raise self._error
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _prefetched(source: Any, model: EdgeModel, interpreter: Interpreter, roi: Any) -> _Prefetch:
    return _Prefetch(source, model, interpreter, roi)


@dataclass(frozen=True)
class _Parts:
    """What every frame's step uses, fixed for the whole run (one argument, not a dozen)."""

    model: EdgeModel
    interpreter: Interpreter
    top_k: int
    sequencer: Sequencer
    source: Any
    roi: Optional[Sequence[float]]
    device: str
    publishers: Sequence[Any]
    stream: Optional[MjpegStream]
    capture: Optional[RetrainCapture]
    on_payload: Optional[Callable[[Dict[str, Any]], None]]


@dataclass
class _Counts:
    """The counters the frame steps keep; they become the run's stats."""

    frames: int = 0
    inferences: int = 0
    published: int = 0
    bad_roi: int = 0


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
    prefetch: bool = False,
) -> Dict[str, Any]:
    """Run until the source ends, ``max_frames`` good frames were read, or ``stop`` is set.

    ``prefetch=True`` reads and preprocesses frame n+1 in a second thread while frame n
    is inferred (OpenCV and the backends release the GIL): more frames/s when
    preprocessing is a large share, one frame more latency on a live camera.

    Returns counters (frames, inferences, published, bad frames, frames/s, per-output
    stats). Publishers are not closed here: the caller flushes them (so an outage at the
    end still delivers) and closes them.
    """
    interpreter = Interpreter(interpret or InterpretConfig())
    sequencer = sequencer or Sequencer()
    parts = _Parts(model, interpreter, interpreter.config.top_k, sequencer, source, roi, device,
                   _outbox_first(publishers, sequencer), stream, capture, on_payload)  # fmt: skip
    counts = _Counts()
    started = time.perf_counter()
    prefetch = prefetch and getattr(model, "supports_prefetch", True)
    items = _prefetched(source, model, interpreter, roi) if prefetch else _plain(source)
    try:
        for index, frame, chw in items:
            if stop is not None and stop.is_set():
                break
            if max_frames is not None and counts.frames >= max_frames:
                break
            counts.frames += 1
            if not interpreter.should_infer(index):
                continue
            published = _step(parts, counts, index, frame, chw)
            if published and max_frames is not None and counts.frames >= max_frames:
                break
    finally:  # a raising model or publisher must not leave the prefetch thread polling
        if isinstance(items, _Prefetch):
            items.close()
    return _stats(counts, time.perf_counter() - started, parts)


def _outbox_first(publishers: Sequence[Any], sequencer: Sequencer) -> Sequence[Any]:
    """``publishers``, the one that writes to the sequencer's outbox (if any) first."""
    # the outbox commit is what makes an id durable: it happens before any other output
    outbox = getattr(sequencer, "outbox", None)
    if outbox is not None:
        publishers = sorted(publishers, key=lambda p: getattr(p, "buffer", None) is not outbox)
    return publishers


def _step(parts: _Parts, counts: _Counts, index: int, frame: np.ndarray, chw: Any) -> bool:
    """Infer one frame and send its result on; True when a payload was published.

    A frame the model cannot use is counted and logged, not raised: one bad camera frame
    must not end the device loop.
    """
    try:
        result = _classify(parts.model, frame, chw, parts.top_k, parts.roi)
    except BadFrameError as exc:
        counts.bad_roi += 1
        log.warning("frame %d skipped: %s", index, exc)
        return False
    counts.inferences += 1
    decision = parts.interpreter.update(result)
    _show(parts, index, frame, result, decision)
    if decision is None:
        return False
    payload = _payload(
        result, decision, index, parts.source, parts.sequencer, parts.interpreter, parts.device
    )
    for pub in parts.publishers:
        pub.publish(payload)
    if parts.on_payload is not None:
        parts.on_payload(payload)
    counts.published += 1
    return True


def _show(
    parts: _Parts, index: int, frame: np.ndarray, result: Dict[str, Any], decision: Any
) -> None:
    """Hand an inferred frame to the project stream and the retraining capture.

    They see every inferred frame, reported or not (the stream shows the smoothed
    predictions once the interpreter has decided, else the frame's own).
    """
    shown = decision[0] if decision is not None else result["predictions"]
    if parts.stream is not None:
        parts.stream.write(frame, shown)
    if parts.capture is not None:
        parts.capture.offer(frame, result, name="{}_{:08d}".format(int(time.time()), index))


def _stats(counts: _Counts, elapsed: float, parts: _Parts) -> Dict[str, Any]:
    """The run's counters and rates, plus the source's, stream's and capture's own stats."""
    stats = {
        "frames": counts.frames,
        "inferences": counts.inferences,
        "published": counts.published,
        "bad_roi": counts.bad_roi,
        "seconds": round(elapsed, 3),
        "fps": round(counts.frames / elapsed, 2) if elapsed > 0 else 0.0,
        "next_seq": parts.sequencer.peek,
    }  # type: Dict[str, Any]
    for name, part in (("source", parts.source), ("stream", parts.stream),
                       ("capture", parts.capture)):  # fmt: skip
        if part is not None and hasattr(part, "stats"):
            stats[name] = part.stats()  # type: ignore[union-attr]
    return stats


def _classify(
    model: EdgeModel, frame: np.ndarray, chw: Any, top_k: int, roi: Optional[Sequence[float]]
) -> Dict[str, Any]:
    """One frame's result: from the prefetched ``(tensor, preprocess ms)`` when there is one,
    else from the frame itself. A frame the prefetcher could not preprocess arrives as its
    :class:`BadFrameError` and is raised here, so both paths skip it the same way."""
    if isinstance(chw, BadFrameError):
        raise chw
    if chw is not None:
        return model.predict_tensor(chw[0], top_k=top_k, preprocess_ms=chw[1])
    return model.predict(frame, top_k=top_k, roi=roi)


def _payload(
    result: Dict[str, Any],
    decision: Tuple[Any, Any, Any],
    index: int,
    source: Any,
    sequencer: Sequencer,
    interpreter: Interpreter,
    device: str,
) -> Dict[str, Any]:
    """The published JSON for a frame the interpreter decided to report."""
    smoothed, top, reason = decision
    frame_info = {"index": int(index), "source": str(getattr(source, "name", ""))}
    skipped = getattr(source, "skipped", None)
    if skipped is not None:
        frame_info["skipped_bad"] = int(skipped)
    return make_payload(
        dict(result, predictions=smoothed),
        seq=sequencer.next(),
        device=device,
        top=top,
        frame=frame_info,
        reason=reason,
        smoothed_over=interpreter.window,
        epoch=sequencer.epoch,
        gap=sequencer.take_gap(),
    )
