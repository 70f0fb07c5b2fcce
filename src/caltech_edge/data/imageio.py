"""Decode one image file into RGB (or BGR) uint8, or say exactly why it cannot be used.

The one decoder of the library: training, calibration, export verification, ``data check``,
the ``infer`` folder and still-image sources and ``serve`` all call it, so a photo gives the
same pixels (and the same top-1) everywhere.

Real image trees contain grayscale and CMYK JPEGs, PNGs with alpha, files without an
extension, stray non-image files, empty and truncated files, phone photos stored sideways
with an EXIF Orientation tag, and hostile files (decompression and aspect-ratio bombs). This
module turns each of those into either an ``HxWx3`` ``uint8`` array or an
:class:`ImageDecodeError` carrying a short reason, so datasets can skip bad files with a
report instead of crashing mid-epoch. Before any pixel memory is allocated it

* sniffs the format from the magic bytes (extensions lie or are missing),
* reads size and orientation from the header (:mod:`~caltech_edge.data.imageheader`, every
  accepted format: JPEG, PNG, GIF, BMP, WebP, TIFF) and refuses images above
  :data:`MAX_PIXELS` or longer than :data:`~caltech_edge.data.transforms.MAX_ASPECT`:1
  (resizing the short side to 256 multiplies the long side, so a 7 KB 300000x8 PNG would
  need 7.4 GB after the resize; see ``benchmarks/bench_decode_bombs.py``),
* requires the JPEG end-of-image marker (``FF D9``) / the PNG ``IEND`` chunk, which every
  one of the 9,678 real Caltech images in ``../shared/data`` has and a truncated file lacks.

Then it decodes with OpenCV ignoring the decoder's own orientation handling (which differs
between OpenCV versions and formats) and applies the header's EXIF orientation itself, as
users photographing with phones expect and as Pillow's ``ImageOps.exif_transpose`` does.
GIFs that the OpenCV build cannot read are decoded with Pillow when it is installed.

:func:`probe` does the cheap checks only (header and tail, no decode) for scanning a tree;
:func:`load_image` does them all. Python 3.8-compatible and torch-free: the device runtime
imports it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from ..errors import DatasetError
from .imageheader import HEAD_BYTES, Header, read_header, sniff, without_orientation
from .transforms import MAX_ASPECT, as_rgb

__all__ = [
    "FORMATS",
    "MAX_ASPECT",
    "MAX_PIXELS",
    "ImageDecodeError",
    "ImageTooLargeError",
    "apply_orientation",
    "decode_image",
    "load_image",
    "probe",
    "sniff",
]

#: Refuse images with more pixels than this (the same threshold as Pillow's
#: DecompressionBombWarning: 89,478,485 px, about 9459 x 9459). The largest real Caltech
#: image is 3481 x 3999 = 13.9 Mpx.
MAX_PIXELS = 89_478_485

#: Formats we accept, keyed by the name :func:`sniff` returns.
FORMATS = ("jpeg", "png", "bmp", "gif", "webp", "tiff")

_TAIL = 4096  # bytes read from the end of a file to find the end marker

# OpenCV >= 4.10 can have libjpeg write RGB directly (no extra pass); older ones give BGR,
# which as_rgb converts. Both give the same pixels. Orientation is applied by us.
_RGB_FLAG = getattr(cv2, "IMREAD_COLOR_RGB", None)
_FLAGS = {
    "BGR": (cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION, "BGR"),
    "RGB": (
        (cv2.IMREAD_COLOR if _RGB_FLAG is None else _RGB_FLAG) | cv2.IMREAD_IGNORE_ORIENTATION,
        "BGR" if _RGB_FLAG is None else "RGB",
    ),
}


class ImageDecodeError(DatasetError):
    """An image file cannot be used; ``reason`` is a short phrase for reports."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ImageTooLargeError(ImageDecodeError):
    """The header claims more pixels or a longer aspect ratio than the limits allow."""


def _size_reason(width: int, height: int, max_pixels: int, max_aspect: float) -> str | None:
    if width <= 0 or height <= 0:
        return f"invalid size {width}x{height} in the header"
    if width * height > max_pixels:
        return (
            f"too large: {width}x{height} = {width * height:,} pixels exceeds the limit of "
            f"{max_pixels:,} (decompression-bomb guard; raise max_pixels if you trust the file)"
        )
    if max(width, height) > max_aspect * min(width, height):
        ratio = max(width, height) / min(width, height)
        return (
            f"aspect ratio {ratio:,.0f}:1 of {width}x{height} exceeds {max_aspect:g}:1 "
            "(resizing the short side would multiply the long side; crop the image first)"
        )
    return None


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


class _Checked:
    """The outcome of the cheap checks: format, header, and why the file is refused."""

    def __init__(
        self,
        fmt: str | None = None,
        header: Header | None = None,
        reason: str | None = None,
        too_large: bool = False,
    ) -> None:
        self.fmt, self.header, self.reason, self.too_large = fmt, header, reason, too_large

    def raise_if_bad(self, name: str | os.PathLike[str]) -> None:
        if self.reason:
            cls = ImageTooLargeError if self.too_large else ImageDecodeError
            raise cls(name, self.reason)


def _check(
    fh: BinaryIO, size: int, max_pixels: int, max_aspect: float, *, name: str = ""
) -> _Checked:
    """The cheap checks shared by :func:`probe`, :func:`load_image` and :func:`decode_image`."""
    if size == 0:
        return _Checked(reason="empty file (0 bytes)")
    head = fh.read(HEAD_BYTES)
    fmt = sniff(head)
    if fmt is None:
        what = "a hidden/system file" if name.startswith(".") else f"starts with {head[:8]!r}"
        return _Checked(reason=f"not an image ({what})")
    if fmt in ("jpeg", "png"):
        fh.seek(max(0, size - _TAIL))
        reason = _tail_reason(fmt, fh.read(_TAIL))
        if reason:
            return _Checked(fmt, reason=reason)
    header = read_header(fmt, fh, head)
    if header is None:
        return _Checked(fmt, reason=f"corrupt {fmt.upper()} header (no readable image size)")
    reason = _size_reason(header.width, header.height, max_pixels, max_aspect)
    too_large = reason is not None and not reason.startswith("invalid")
    return _Checked(fmt, header, reason, too_large)


def probe(
    path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS, max_aspect: float = MAX_ASPECT
) -> str | None:
    """Why ``path`` cannot be used as an image, or None if it looks fine.

    Cheap (header and last 4 KB, no pixel decode), so a dataset scan can call it on every
    file. A file that passes can still fail a full decode (corrupt entropy data);
    :func:`load_image` catches that.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            return _check(fh, size, max_pixels, max_aspect, name=path.name).reason
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"


#: EXIF orientation -> the numpy ops that display the stored pixels upright (the same
#: transposes as Pillow's ``ImageOps.exif_transpose``).
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: a.swapaxes(0, 1)[::-1],
}


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` (HxW[xC], as stored) turned upright for EXIF ``orientation`` 1..8."""
    op = _ORIENT.get(int(orientation))
    return image if op is None else np.ascontiguousarray(op(image))


def _pillow_decode(data: bytes, fmt: str, name: str, order: str) -> np.ndarray:
    """The fallback for formats this OpenCV build cannot read (GIF before OpenCV 4.11)."""
    try:
        from PIL import Image
    except ImportError:
        raise ImageDecodeError(
            name,
            f"{fmt.upper()} not supported by this OpenCV build ({cv2.__version__}); convert it "
            "to PNG or JPEG (or pip install pillow)",
        ) from None
    try:
        with Image.open(io.BytesIO(data)) as im:
            rgb = np.asarray(im.convert("RGB"))
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise ImageDecodeError(name, f"corrupt {fmt.upper()} ({exc})") from None
    return rgb[..., ::-1].copy() if order == "BGR" else rgb


def _decode(data: bytes, checked: _Checked, name: str, order: str, max_pixels: int) -> np.ndarray:
    fmt, header = checked.fmt or "image", checked.header
    flags, decoded_order = _FLAGS[order]
    if header is not None:
        data = without_orientation(data, fmt, header)
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if (img is None or img.size == 0) and fmt == "gif":
        img, decoded_order = _pillow_decode(data, fmt, name, order), order
    if img is None or img.size == 0:
        raise ImageDecodeError(name, f"corrupt {fmt.upper()} (decoder failed)")
    reason = _size_reason(img.shape[1], img.shape[0], max_pixels, float("inf"))
    if reason:  # the header lied; nothing larger than the limit goes further
        raise ImageTooLargeError(name, reason)
    if img.dtype != np.uint8:  # 16-bit PNG/TIFF
        img = cv2.convertScaleAbs(img, alpha=255.0 / 65535.0)
    if order == "RGB":
        img = as_rgb(img, decoded_order)
    elif img.ndim == 2 or img.shape[2] != 3:
        img = cv2.cvtColor(as_rgb(img, decoded_order), cv2.COLOR_RGB2BGR)
    return apply_orientation(img, header.orientation if header else 1)


def _order(order: str) -> str:
    key = str(order).upper()
    if key not in _FLAGS:
        raise ValueError(f"order must be 'RGB' or 'BGR', got {order!r}")
    return key


def decode_image(
    data: bytes,
    *,
    name: str = "<bytes>",
    max_pixels: int = MAX_PIXELS,
    max_aspect: float = MAX_ASPECT,
    order: str = "RGB",
) -> np.ndarray:
    """Decode encoded image bytes into upright uint8 ``HxWx3`` (see :func:`load_image`)."""
    order = _order(order)
    checked = _check(io.BytesIO(data), len(data), max_pixels, max_aspect, name=Path(name).name)
    checked.raise_if_bad(name)
    return _decode(data, checked, name, order, max_pixels)


def load_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = MAX_PIXELS,
    max_aspect: float = MAX_ASPECT,
    order: str = "RGB",
) -> np.ndarray:
    """Read ``path`` into an upright uint8 ``HxWx3`` array, RGB (or ``order="BGR"``).

    Grayscale and CMYK JPEGs come back as 3 channels, PNG alpha is dropped (as Pillow's
    ``convert("RGB")`` does), EXIF orientation is applied (as phone galleries and Pillow's
    ``exif_transpose`` show the photo). Raises :class:`ImageDecodeError` (a
    ``DatasetError``) with a reason for empty, truncated, non-image, corrupt files and
    :class:`ImageTooLargeError` for too many pixels or too long an aspect ratio; the file
    is read only after its header passed.
    """
    order = _order(order)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            checked = _check(fh, size, max_pixels, max_aspect, name=Path(path).name)
            checked.raise_if_bad(path)
            fh.seek(0)
            data = fh.read()
    except OSError as exc:
        raise ImageDecodeError(path, f"unreadable ({exc.strerror or exc})") from exc
    return _decode(data, checked, str(path), order, max_pixels)
