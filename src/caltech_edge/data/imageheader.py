"""Image size and EXIF orientation read from a file's header, before any pixel is decoded.

Why read headers ourselves: the decoders allocate the full image before anyone can look at
its size, so a 213 KB deflate TIFF or a 1.5 KB PNG can claim gigapixels (decompression and
aspect-ratio bombs). Every format :mod:`caltech_edge.data.imageio` accepts (JPEG, PNG, GIF,
BMP, WebP, TIFF) has a reader here that returns the stored size and the EXIF orientation
(phones store portrait photos landscape plus an Orientation tag), reading at most a few
segments with seeks. Pure Python (struct only), Python 3.8-compatible: the device runtime
ships it.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, Callable, Dict, NamedTuple, Optional, Tuple

#: Bytes every reader may assume are in ``head`` (shorter only for shorter files).
HEAD_BYTES = 64

_EXIF_ORIENTATION = 0x0112
_TIFF_WIDTH, _TIFF_HEIGHT = 0x0100, 0x0101
_MAX_IFD_ENTRIES = 4096  # a real IFD0 has tens; more is garbage or an attack
_MAX_CHUNKS = 10_000  # PNG/WebP chunks walked while looking for EXIF


class Header(NamedTuple):
    """What the header says: stored (not yet rotated) size and EXIF orientation 1..8."""

    width: int
    height: int
    orientation: int = 1
    #: TIFF only: file offset of the Orientation value (see :func:`without_orientation`)
    orientation_at: int = -1

    @property
    def oriented_size(self) -> Tuple[int, int]:
        """(width, height) after the orientation is applied (5..8 swap the axes)."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


def sniff(head: bytes) -> Optional[str]:
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


def tiff_tags(data: bytes, start: int = 0) -> Dict[int, int]:
    """Width, height and orientation tags of IFD0 of the TIFF structure at ``data[start:]``.

    EXIF blocks are TIFF structures, so JPEG/PNG/WebP orientation and TIFF size share this.
    Only SHORT/LONG values that fit in the entry are read (all three tags are such).
    """
    tiff = data[start:]
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return {}
    endian = "<" if tiff[:2] == b"II" else ">"
    offset = struct.unpack(endian + "I", tiff[4:8])[0]
    if offset + 2 > len(tiff):
        return {}
    count = min(struct.unpack(endian + "H", tiff[offset : offset + 2])[0], _MAX_IFD_ENTRIES)
    tags: Dict[int, int] = {}
    for i in range(count):
        entry = tiff[offset + 2 + 12 * i : offset + 14 + 12 * i]
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(endian + "HH", entry[:4])
        if tag not in (_TIFF_WIDTH, _TIFF_HEIGHT, _EXIF_ORIENTATION):
            continue
        if kind == 3:  # SHORT
            tags[tag] = struct.unpack(endian + "H", entry[8:10])[0]
        elif kind == 4:  # LONG
            tags[tag] = struct.unpack(endian + "I", entry[8:12])[0]
    return tags


def _orientation(tags: Dict[int, int]) -> int:
    value = tags.get(_EXIF_ORIENTATION, 1)
    return value if 1 <= value <= 8 else 1


def _jpeg(fh: BinaryIO, head: bytes) -> Optional[Header]:
    """Walk the marker segments to the first SOF; an APP1 Exif segment before it gives
    the orientation."""
    fh.seek(2)
    orientation = 1
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
            return Header(width, height, orientation)
        if marker == 0xDA:  # start of scan before any SOF: broken file
            return None
        if marker == 0xE1 and orientation == 1:
            segment = fh.read(length - 2)
            if segment[:6] == b"Exif\x00\x00":
                orientation = _orientation(tiff_tags(segment, 6))
        else:
            fh.seek(length - 2, os.SEEK_CUR)
        # the next read must find 0xFF; anything else means a corrupt segment length
        if fh.read(1) != b"\xff":
            return None


def _png(fh: BinaryIO, head: bytes) -> Optional[Header]:
    """IHDR gives the size; an eXIf chunk before the first IDAT the orientation."""
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    fh.seek(8)
    for _ in range(_MAX_CHUNKS):
        raw = fh.read(8)
        if len(raw) < 8 or raw[4:8] in (b"IDAT", b"IEND"):
            break
        length = struct.unpack(">I", raw[:4])[0]
        if raw[4:8] == b"eXIf":
            exif = fh.read(min(length, 1 << 20))
            start = 6 if exif[:6] == b"Exif\x00\x00" else 0
            return Header(width, height, _orientation(tiff_tags(exif, start)))
        fh.seek(length + 4, os.SEEK_CUR)  # data + CRC
    return Header(width, height)


def _gif(fh: BinaryIO, head: bytes) -> Optional[Header]:
    """The larger of the logical screen and the first frame: a frame may claim more."""
    if len(head) < 13:
        return None
    width, height = struct.unpack("<HH", head[6:10])
    flags = head[10]
    fh.seek(13 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0))
    for _ in range(_MAX_CHUNKS):
        block = fh.read(1)
        if block == b"\x21":  # extension: label, then sub-blocks until a 0 length
            fh.read(1)
            size = fh.read(1)
            while size and size != b"\x00":
                fh.seek(size[0], os.SEEK_CUR)
                size = fh.read(1)
            continue
        if block == b"\x2c":  # image descriptor: left, top, width, height
            desc = fh.read(8)
            if len(desc) == 8:
                left, top, fw, fh_ = struct.unpack("<HHHH", desc)
                width, height = max(width, left + fw), max(height, top + fh_)
        break
    return Header(width, height)


def _bmp(fh: BinaryIO, head: bytes) -> Optional[Header]:
    if len(head) < 26:
        return None
    if struct.unpack("<I", head[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", head[18:22])
    else:
        width, height = struct.unpack("<ii", head[18:26])
    return Header(abs(width), abs(height))


def _webp_exif(fh: BinaryIO) -> int:
    """Orientation from the EXIF chunk of an extended (VP8X) WebP; 1 without one."""
    fh.seek(12)
    for _ in range(_MAX_CHUNKS):
        raw = fh.read(8)
        if len(raw) < 8:
            return 1
        length = struct.unpack("<I", raw[4:8])[0]
        if raw[:4] == b"EXIF":
            exif = fh.read(min(length, 1 << 20))
            start = 6 if exif[:6] == b"Exif\x00\x00" else 0
            return _orientation(tiff_tags(exif, start))
        fh.seek(length + (length & 1), os.SEEK_CUR)
    return 1


def _webp(fh: BinaryIO, head: bytes) -> Optional[Header]:
    """VP8 (lossy), VP8L (lossless) or VP8X (extended: canvas size, maybe EXIF)."""
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return Header(width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = struct.unpack("<I", head[21:25])[0]
        return Header((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        orientation = _webp_exif(fh) if head[20] & 0x08 else 1
        return Header(width, height, orientation)
    return None


def _tiff(fh: BinaryIO, head: bytes) -> Optional[Header]:
    """IFD0's ImageWidth/ImageLength (the page the decoders read) and Orientation."""
    endian = "<" if head[:2] == b"II" else ">"
    if len(head) < 8:
        return None
    offset = struct.unpack(endian + "I", head[4:8])[0]
    fh.seek(offset)
    raw_count = fh.read(2)
    if len(raw_count) < 2:
        return None
    count = min(struct.unpack(endian + "H", raw_count)[0], _MAX_IFD_ENTRIES)
    # rebuild a minimal TIFF (header + this IFD) so tiff_tags can parse it
    ifd = fh.read(12 * count)
    tags = tiff_tags(head[:4] + struct.pack(endian + "I", 8) + raw_count + ifd)
    if _TIFF_WIDTH not in tags or _TIFF_HEIGHT not in tags:
        return None
    at = -1
    for i in range(count):
        if struct.unpack(endian + "H", ifd[12 * i : 12 * i + 2])[0] == _EXIF_ORIENTATION:
            at = offset + 2 + 12 * i + 8
    return Header(tags[_TIFF_WIDTH], tags[_TIFF_HEIGHT], _orientation(tags), at)


def without_orientation(data: bytes, fmt: str, header: Header) -> bytes:
    """``data`` with a TIFF's Orientation set to 1, so the decoder returns stored pixels.

    OpenCV's TIFF decoder (libtiff's RGBA reader) applies the tag itself whatever the
    ``IMREAD_IGNORE_ORIENTATION`` flag says, while its JPEG/PNG/WebP decoders honour the
    flag; neutralizing the tag lets :mod:`~caltech_edge.data.imageio` apply every format's
    orientation the same way, once.
    """
    if fmt != "tiff" or header.orientation_at < 0 or header.orientation == 1:
        return data
    endian = "<" if data[:2] == b"II" else ">"
    out = bytearray(data)
    out[header.orientation_at : header.orientation_at + 2] = struct.pack(endian + "H", 1)
    return bytes(out)


#: format name -> header reader (``fh`` positioned anywhere, ``head`` its first bytes).
READERS: Dict[str, Callable[[BinaryIO, bytes], Optional[Header]]] = {
    "jpeg": _jpeg,
    "png": _png,
    "gif": _gif,
    "bmp": _bmp,
    "webp": _webp,
    "tiff": _tiff,
}


def read_header(fmt: str, fh: BinaryIO, head: bytes) -> Optional[Header]:
    """The :class:`Header` of an open file of format ``fmt``; None if it is unreadable."""
    try:
        return READERS[fmt](fh, head)
    except (struct.error, OSError, ValueError, IndexError):
        return None
