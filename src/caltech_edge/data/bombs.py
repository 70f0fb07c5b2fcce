"""Hostile but valid image files: decompression and aspect-ratio bombs, built in kilobytes.

Tests and ``benchmarks/bench_decode_bombs.py`` use them to show that the decoder refuses
them from the header, before a decoder or a resize allocates gigabytes. The files are
real: at a small size the same builders give images OpenCV and Pillow decode. Rows are
compressed as a stream, so building a 12000x12000 TIFF needs a few MB, not 432.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

_CHUNK_ROWS = 64


def _deflate(rows: Iterator[bytes]) -> bytes:
    comp = zlib.compressobj(9)
    out = [comp.compress(row) for row in rows]
    out.append(comp.flush())
    return b"".join(out)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """An all-black RGB PNG of ``width`` x ``height`` (60000x8 is 1.5 KB)."""
    row = b"\x00" + bytes(3 * width)  # filter byte "none" + pixels
    idat = _deflate(row for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def tiff_bomb(width: int, height: int) -> bytes:
    """An all-black RGB TIFF, one deflate strip (12000x12000 is about 420 KB)."""
    rows_per_block = max(1, _CHUNK_ROWS)
    block = bytes(3 * width * rows_per_block)

    def rows() -> Iterator[bytes]:
        left = height
        while left > 0:
            n = min(left, rows_per_block)
            yield block[: 3 * width * n]
            left -= n

    strip = _deflate(rows())
    entries = [  # (tag, type, count, value); type 3 = SHORT, 4 = LONG; sorted by tag
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 3, 0),  # BitsPerSample 8,8,8: offset patched below
        (259, 3, 1, 8),  # Adobe deflate
        (262, 3, 1, 2),  # RGB
        (273, 4, 1, 0),  # StripOffsets: patched below
        (277, 3, 1, 3),
        (278, 4, 1, height),
        (279, 4, 1, len(strip)),
        (284, 3, 1, 1),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    bits_at = 8 + ifd_size
    strip_at = bits_at + 6
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if tag == 258:
            value = bits_at
        elif tag == 273:
            value = strip_at
        packed = struct.pack("<H", value) + b"\x00\x00" if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)  # no next IFD
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<HHH", 8, 8, 8) + strip
