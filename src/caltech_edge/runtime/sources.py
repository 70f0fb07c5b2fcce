"""Frame sources: camera index, video file, image folder or file, RTSP/HTTP URL, ``awscam``.

Image files (a folder, or one still) go through the library's one decoder
(:func:`caltech_edge.data.imageio.load_image`): EXIF orientation applied, pixel and
aspect-ratio limits checked from the header before decoding, the same pixels training saw.

Every source yields ``(index, frame_bgr)`` with good frames only; bad frames (``None``,
empty, wrong dtype or shape) are skipped and counted in ``stats``. A live source (camera,
URL, awscam) that stops delivering is reopened with exponential backoff, bounded by
``max_backoff`` seconds per wait and ``max_reconnects`` attempts in a row (``None`` =
forever, what a device wants). A video file or folder simply ends.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np

from ..data.imageheader import sniff
from ..data.imageio import ImageDecodeError, ImageTooLargeError, load_image
from ..errors import ConfigError
from .frames import frame_problem

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")

ReadFn = Callable[[], Tuple[bool, Any]]


class FrameSource:
    """Base: iterate good frames, count bad ones, pace to ``rate`` frames/s if given."""

    live = False

    def __init__(self, name: str, *, rate: Optional[float] = None) -> None:
        self.name = name
        self.rate = float(rate) if rate else None
        self.frames = 0  # good frames yielded
        self.bad = {}  # type: Dict[str, int]  # reason -> count
        self.reconnects = 0
        self._next_due = 0.0

    @property
    def skipped(self) -> int:
        return sum(self.bad.values())

    def stats(self) -> Dict[str, Any]:
        return {
            "source": self.name,
            "frames": self.frames,
            "skipped_bad": self.skipped,
            "bad_reasons": dict(self.bad),
            "reconnects": self.reconnects,
        }

    def _raw(self) -> Iterator[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _pace(self) -> None:
        if self.rate is None:
            return
        now = time.monotonic()
        if self._next_due > now:
            time.sleep(self._next_due - now)
        self._next_due = max(now, self._next_due) + 1.0 / self.rate

    def __iter__(self) -> Iterator[Tuple[int, np.ndarray]]:
        for frame in self._raw():
            problem = frame_problem(frame)
            if problem is not None:
                key = problem.split(" ")[0]
                self.bad[key] = self.bad.get(key, 0) + 1
                continue
            self._pace()
            index = self.frames
            self.frames += 1
            yield index, frame

    def close(self) -> None:
        return None


class ReadSource(FrameSource):
    """Frames from a ``read() -> (ok, frame)`` callable, reopened with backoff when it fails.

    ``opener()`` returns a fresh read callable (a new ``cv2.VideoCapture``, ``awscam``);
    ``live=False`` means the first failed read is the end (a video file).
    """

    def __init__(
        self,
        name: str,
        opener: Callable[[], Optional[ReadFn]],
        *,
        live: bool,
        rate: Optional[float] = None,
        failures_before_reconnect: int = 5,
        max_backoff: float = 30.0,
        max_reconnects: Optional[int] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(name, rate=rate)
        self.live = live
        self._opener = opener
        self.failures_before_reconnect = max(1, int(failures_before_reconnect))
        self.max_backoff = float(max_backoff)
        self.max_reconnects = max_reconnects
        self._sleep = sleep
        self.backoffs: List[float] = []  # waits actually made, for logs and tests
        self._attempts = 0

    def _reopen(self, first: bool) -> Optional[ReadFn]:
        """Open (again); a reopen counts against ``max_reconnects`` until a good frame arrives."""
        delay = 0.5
        while True:
            if not first:
                self._attempts += 1
                if self.max_reconnects is not None and self._attempts > self.max_reconnects:
                    log.error(
                        "%s: gave up after %d reconnects without a frame",
                        self.name,
                        self._attempts - 1,
                    )
                    return None
            read = self._opener()
            if read is not None:
                return read
            if first and not self.live:
                raise ConfigError("{}: cannot open this video source".format(self.name))
            first = False
            log.warning("%s: unavailable, retrying in %.1f s", self.name, delay)
            self.backoffs.append(delay)
            self._sleep(delay)
            delay = min(delay * 2.0, self.max_backoff)

    def _raw(self) -> Iterator[Any]:
        read = self._reopen(first=True)
        failures = 0
        while read is not None:
            ok, frame = read()
            if ok:
                failures = 0
                self._attempts = 0
                yield frame  # the base class checks it (None, empty, dtype, shape)
                continue
            if not self.live:
                return  # end of the file
            failures += 1
            self.bad["read_failed"] = self.bad.get("read_failed", 0) + 1
            if failures >= self.failures_before_reconnect:
                self.reconnects += 1
                failures = 0
                read = self._reopen(first=False)
            else:
                self._sleep(0.05)


class FolderSource(FrameSource):
    """Every image file in a folder (sorted, recursive), or one image file (a still).

    Files the decoder refuses (corrupt, truncated, too many pixels, too long an aspect
    ratio) are logged with their reason and counted as bad; the loop goes on.
    """

    def __init__(
        self, root: Union[str, Path], *, rate: Optional[float] = None, loop: bool = False
    ) -> None:
        super().__init__(str(root), rate=rate)
        self.root = Path(root)
        self.loop = loop
        if self.root.is_file():
            self.files = [self.root]
        else:
            self.files = sorted(
                p
                for p in self.root.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        if not self.files:
            raise ConfigError(
                "{}: no images ({}) found in this folder".format(
                    self.root, ", ".join(IMAGE_SUFFIXES)
                )
            )

    def _raw(self) -> Iterator[Any]:
        while True:
            for path in self.files:
                try:
                    yield load_image(path, order="BGR")
                except ImageDecodeError as exc:
                    key = "too_large" if isinstance(exc, ImageTooLargeError) else "undecodable"
                    self.bad[key] = self.bad.get(key, 0) + 1
                    log.warning("%s: skipped: %s", path, exc.reason)
            if not self.loop:
                return


def _is_image_file(path: Path) -> bool:
    try:
        with open(str(path), "rb") as fh:
            return sniff(fh.read(16)) is not None
    except OSError:
        return False


def _capture_opener(target: Union[int, str]) -> Callable[[], Optional[ReadFn]]:
    def opener() -> Optional[ReadFn]:
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            return None
        # the same policy as the image decoder: a phone video's rotation tag is applied
        # (OpenCV's FFmpeg backend does so by default; say it, for builds that differ)
        cap.set(getattr(cv2, "CAP_PROP_ORIENTATION_AUTO", 49), 1)
        return cap.read

    return opener


def _awscam_opener() -> Optional[ReadFn]:
    import awscam  # type: ignore  # only on a DeepLens

    return awscam.getLastFrame


def open_source(
    source: Union[str, int, Path],
    *,
    rate: Optional[float] = None,
    max_reconnects: Optional[int] = None,
    max_backoff: float = 30.0,
    loop: bool = False,
) -> FrameSource:
    """Pick the source for ``source``: ``"awscam"``, a camera index, a URL, a folder, an image,
    a video."""
    text = str(source)
    if text == "awscam":
        try:
            import awscam  # type: ignore  # noqa: F401
        except ImportError:
            raise ConfigError(
                "source 'awscam' needs the DeepLens awscam module (only on a DeepLens); "
                "use a camera index, video file, folder or URL elsewhere"
            ) from None
        return ReadSource(
            "awscam",
            lambda: _awscam_opener(),
            live=True,
            rate=rate,
            max_backoff=max_backoff,
            max_reconnects=max_reconnects,
        )
    if isinstance(source, int) or text.isdigit():
        return ReadSource(
            "camera:{}".format(text),
            _capture_opener(int(text)),
            live=True,
            rate=rate,
            max_backoff=max_backoff,
            max_reconnects=max_reconnects,
        )
    if text.lower().startswith(URL_SCHEMES):
        return ReadSource(
            text,
            _capture_opener(text),
            live=True,
            rate=rate,
            max_backoff=max_backoff,
            max_reconnects=max_reconnects,
        )
    path = Path(text)
    if path.is_dir() or (path.is_file() and _is_image_file(path)):
        return FolderSource(path, rate=rate, loop=loop)
    if path.is_file():
        return ReadSource(text, _capture_opener(text), live=False, rate=rate)
    raise ConfigError(
        "source {!r} is not a camera index, URL (rtsp://, http://), folder, video file or "
        "'awscam'".format(text)
    )
