"""Decode one image file into RGB uint8, or say exactly why it cannot be used.

Real image trees contain grayscale and CMYK JPEGs, PNGs with alpha, files without an
extension, stray non-image files, empty and truncated files and the odd huge scan. This
module turns each of those into either an ``HxWx3`` RGB ``uint8`` array or an
:class:`ImageDecodeError` carrying a short reason, so datasets can skip bad files with a
report instead of crashing mid-epoch.

Why not just ``cv2.imread``: OpenCV returns a *partial* image for a truncated JPEG (it only
prints "Premature end of JPEG file"), decides the format from the content anyway, and
applies EXIF orientation, which Pillow/torchvision do not. So we

* sniff the format from the magic bytes (extensions lie or are missing),
* read the pixel size from the header and refuse anything above :data:`MAX_PIXELS`
  (a decompression-bomb guard, before any pixel memory is allocated),
* require the JPEG end-of-image marker (``FF D9``) / the PNG ``IEND`` chunk, which every
  one of the 9,678 real Caltech images in ``../shared/data`` has and a truncated file lacks,
* decode with OpenCV ignoring EXIF orientation (the same pixels Pillow gives), and
* convert to RGB in :func:`caltech_edge.data.transforms.as_rgb` (the one BGR->RGB place).

:func:`probe` does the cheap checks only (header and tail, no decode) for scanning a tree;
:func:`load_image` does them all. Python 3.8-compatible: the device runtime may import it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from ..errors import DatasetError
from .transforms import as_rgb

#: Refuse images with more pixels than this (the same threshold as Pillow's
#: DecompressionBombWarning: 89,478,485 px, about 9459 x 9459). The largest real Caltech
#: image is 3481 x 3999 = 13.9 Mpx.
MAX_PIXELS = 89_478_485

#: Formats OpenCV decodes that we accept, keyed by the name :func:`sniff` returns.
FORMATS = ("jpeg", "png", "bmp", "gif", "webp", "tiff")

_TAIL = 4096  # bytes read from the end of a file to find the end marker

# OpenCV >= 4.10 can have libjpeg write RGB directly (no extra pass); older ones give BGR,
# which as_rgb converts. Both give the same pixels.
_RGB_FLAG = getattr(cv2, "IMREAD_COLOR_RGB", None)
_DECODE_FLAGS = (
    cv2.IMREAD_COLOR if _RGB_FLAG is None else _RGB_FLAG
) | cv2.IMREAD_IGNORE_ORIENTATION
_DECODED_ORDER = "BGR" if _RGB_FLAG is None else "RGB"


class ImageDecodeError(DatasetError):
    """An image file cannot be used; ``reason`` is a short phrase for reports."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def sniff(head: bytes) -> str | None:
    """The image format from the first bytes of a file, or None if it is not an image."""
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:2] == b"BM":
        return "bmp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def _jpeg_size(fh: BinaryIO) -> tuple[int, int] | None:
    """(width, height) from the first SOF segment, walking the marker segments."""
    fh.seek(2)
    while True:
        byte = fh.read(1)
        while byte == b"\xff":  # fill bytes before a marker
            byte = fh.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            continue
        raw = fh.read(2)
        if len(raw) < 2:
            return None
        length = struct.unpack(">H", raw)[0]
        if length < 2:
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            data = fh.read(5)
            if len(data) < 5:
                return None
            height, width = struct.unpack(">HH", data[1:5])
            return width, height
        if marker == 0xDA:  # start of scan before any SOF: broken file
            return None
        fh.seek(length - 2, os.SEEK_CUR)
        # the next read must find 0xFF; anything else means a corrupt segment length
        nxt = fh.read(1)
        if nxt != b"\xff":
            return None


def _header_size(fmt: str, fh: BinaryIO, head: bytes) -> tuple[int, int] | None:
    """(width, height) read from the header alone; None if the header is unreadable."""
    if fmt == "jpeg":
        return _jpeg_size(fh)
    if fmt == "png" and len(head) >= 24 and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    if fmt == "gif" and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    if fmt == "bmp" and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return abs(width), abs(height)
    return None  # webp/tiff: checked after decoding


def _tail_reason(fmt: str, tail: bytes) -> str | None:
    """A truncation reason from the last bytes of a JPEG/PNG file, or None.

    A JPEG must contain its end-of-image marker after its last start-of-scan marker (bytes
    may follow it: padding, or data some cameras append). Inside entropy-coded data 0xFF is
    always stuffed, so ``FF D9`` there can only be the real marker.
    """
    if fmt == "jpeg":
        eoi = tail.rfind(b"\xff\xd9")
        if eoi < 0 or eoi < tail.rfind(b"\xff\xda"):
            return "truncated JPEG (no end-of-image marker FF D9)"
    if fmt == "png" and b"IEND" not in tail.rstrip(b"\x00")[-12:]:
        return "truncated PNG (no IEND chunk)"
    return None


def _size_reason(width: int, height: int, max_pixels: int) -> str | None:
    if width <= 0 or height <= 0:
        return f"invalid size {width}x{height} in the header"
    if width * height > max_pixels:
        return (
            f"too large: {width}x{height} = {width * height:,} pixels exceeds the limit of "
            f"{max_pixels:,} (decompression-bomb guard; raise max_pixels if you trust the file)"
        )
    return None


def _check(
    fh: BinaryIO, size: int, max_pixels: int, *, name: str = ""
) -> tuple[str | None, str | None]:
    """(format, reason): the cheap checks shared by :func:`probe` and :func:`load_image`."""
    if size == 0:
        return None, "empty file (0 bytes)"
    head = fh.read(32)
    fmt = sniff(head)
    if fmt is None:
        what = "a hidden/system file" if name.startswith(".") else f"starts with {head[:8]!r}"
        return None, f"not an image ({what})"
    if fmt in ("jpeg", "png"):
        fh.seek(max(0, size - _TAIL))
        reason = _tail_reason(fmt, fh.read(_TAIL))
        if reason:
            return fmt, reason
    fh.seek(0)
    wh = _header_size(fmt, fh, head)
    if wh is None and fmt in ("jpeg", "png"):
        return fmt, f"corrupt {fmt.upper()} header (no readable image size)"
    if wh is not None:
        reason = _size_reason(wh[0], wh[1], max_pixels)
        if reason:
            return fmt, reason
    return fmt, None


def probe(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> str | None:
    """Why ``path`` cannot be used as an image, or None if it looks fine.

    Cheap (header and last 4 KB, no pixel decode), so a dataset scan can call it on every
    file. A file that passes can still fail a full decode (corrupt entropy data);
    :func:`load_image` catches that.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            return _check(fh, size, max_pixels, name=path.name)[1]
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"


def decode_image(data: bytes, *, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes into RGB uint8 ``HxWx3`` (see :func:`load_image`)."""
    import io

    fmt, reason = _check(io.BytesIO(data), len(data), max_pixels, name=Path(name).name)
    if reason:
        raise ImageDecodeError(name, reason)
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _DECODE_FLAGS)
    if img is None or img.size == 0:
        raise ImageDecodeError(name, f"corrupt {fmt.upper() if fmt else 'image'} (decoder failed)")
    reason = _size_reason(img.shape[1], img.shape[0], max_pixels)
    if reason:
        raise ImageDecodeError(name, reason)
    if img.dtype != np.uint8:  # 16-bit PNG/TIFF
        img = cv2.convertScaleAbs(img, alpha=255.0 / 65535.0)
    return as_rgb(img, _DECODED_ORDER)


def load_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read ``path`` into an RGB uint8 ``HxWx3`` array.

    Grayscale and CMYK JPEGs come back as 3-channel RGB, PNG alpha is dropped (as Pillow's
    ``convert("RGB")`` does), EXIF orientation is ignored (as Pillow/torchvision do).
    Raises :class:`ImageDecodeError` (a ``DatasetError``) with a reason for empty,
    truncated, non-image, corrupt or too-large files.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageDecodeError(path, f"unreadable ({exc.strerror or exc})") from exc
    return decode_image(data, name=str(path), max_pixels=max_pixels)
