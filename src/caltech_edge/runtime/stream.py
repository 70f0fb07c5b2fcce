"""The project stream: annotated frames as MJPEG, like DeepLens' ``/tmp/results.mjpeg``.

MJPEG here is what DeepLens wrote: JPEG images back to back, read by ``mplayer -demuxer
lavf -lavfdopts format=mjpeg:probesize=32 /tmp/results.mjpeg``. The target may be a FIFO
(then opened non-blocking: with no reader, or a reader too slow, frames are dropped and
counted, never blocking inference) or a regular file (appended, rotated at ``max_bytes``).
"""

from __future__ import annotations

import errno
import os
import select
import stat
from pathlib import Path
from typing import Any, Dict, Sequence, Union

import cv2
import numpy as np


def annotate(
    frame_bgr: np.ndarray, predictions: Sequence[Dict[str, Any]], *, lines: int = 3
) -> np.ndarray:
    """A copy of the frame with the top predictions (label and probability) drawn on it."""
    out = frame_bgr.copy() if frame_bgr.ndim == 3 else cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
    scale = max(0.4, out.shape[0] / 480.0 * 0.8)
    thickness = max(1, round(scale * 2))
    y = int(30 * scale)
    for i, pred in enumerate(list(predictions)[:lines]):
        text = "{} {:.1%}".format(pred["label"], float(pred["probability"]))
        color = (0, 255, 0) if i == 0 else (255, 200, 0)
        cv2.putText(
            out,
            text,
            (10, y),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            thickness + 2,
            cv2.LINE_AA,
        )
        cv2.putText(
            out, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA
        )
        y += int(30 * scale)
    return out


class MjpegStream:
    """Writes annotated JPEG frames to a FIFO (non-blocking) or a file (bounded)."""

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        *,
        quality: int = 80,
        width: int = 0,
        max_bytes: int = 64 * 1024 * 1024,
        make_fifo: bool = False,
    ) -> None:
        self.path = Path(path)
        self.quality = int(quality)
        self.width = int(width)
        self.max_bytes = int(max_bytes)
        if make_fifo and not self.path.exists():
            os.mkfifo(str(self.path))
        self.is_fifo = self.path.exists() and stat.S_ISFIFO(os.stat(str(self.path)).st_mode)
        self._fd = None  # type: Optional[int]
        self.written = 0
        self.dropped = 0
        self.rotations = 0
        if not self.is_fifo:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(str(self.path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _open_fifo(self) -> bool:
        try:
            self._fd = os.open(str(self.path), os.O_WRONLY | os.O_NONBLOCK)
            return True
        except OSError as exc:
            if exc.errno in (errno.ENXIO, errno.ENOENT):  # no reader yet
                return False
            raise

    def encode(self, frame_bgr: np.ndarray, predictions: Sequence[Dict[str, Any]] = ()) -> bytes:
        img = annotate(frame_bgr, predictions) if predictions else frame_bgr
        if self.width and img.shape[1] != self.width:
            height = round(img.shape[0] * self.width / float(img.shape[1]))
            img = cv2.resize(img, (self.width, height), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), self.quality])
        if not ok:
            raise ValueError("OpenCV could not encode the frame as JPEG")
        return buf.tobytes()

    def write(self, frame_bgr: np.ndarray, predictions: Sequence[Dict[str, Any]] = ()) -> bool:
        """Write one annotated frame; False (and counted) when it had to be dropped."""
        if self.is_fifo and self._fd is None and not self._open_fifo():
            self.dropped += 1
            return False
        data = self.encode(frame_bgr, predictions)
        if self.is_fifo:
            return self._write_fifo(data)
        if os.fstat(self._fd).st_size + len(data) > self.max_bytes:  # type: ignore[arg-type]
            os.ftruncate(self._fd, 0)  # type: ignore[arg-type]
            self.rotations += 1
        os.write(self._fd, data)  # type: ignore[arg-type]
        self.written += 1
        return True

    def _write_fifo(self, data: bytes) -> bool:
        fd = self._fd
        assert fd is not None
        try:
            sent = os.write(fd, data)
        except BlockingIOError:  # reader too slow: drop the whole frame
            self.dropped += 1
            return False
        except BrokenPipeError:  # reader went away: reopen for the next frame
            self._close_fd()
            self.dropped += 1
            return False
        view = memoryview(data)[sent:]
        while view:  # finish a partially written frame so the stream stays parseable
            _, ready, _ = select.select([], [fd], [], 1.0)
            if not ready:
                self._close_fd()
                self.dropped += 1
                return False
            try:
                view = view[os.write(fd, view) :]
            except (BlockingIOError, BrokenPipeError):
                self._close_fd()
                self.dropped += 1
                return False
        self.written += 1
        return True

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None

    def close(self) -> None:
        self._close_fd()

    def stats(self) -> Dict[str, Any]:
        return {
            "path": str(self.path),
            "fifo": self.is_fifo,
            "written": self.written,
            "dropped": self.dropped,
        }


def split_mjpeg(data: bytes) -> list:
    """The JPEG images in an MJPEG byte string (SOI ... EOI), for readers and tests."""
    frames = []
    start = data.find(b"\xff\xd8")
    while start != -1:
        end = data.find(b"\xff\xd9", start + 2)
        if end == -1:
            break
        frames.append(data[start : end + 2])
        start = data.find(b"\xff\xd8", end + 2)
    return frames
