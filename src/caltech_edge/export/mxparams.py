"""Read the index of an MXNet ``.params`` file (names, shapes, dtypes) without MXNet.

Why: ``package`` must not ship an empty, truncated or foreign params file to a camera
(DeepLens' model optimizer fails there, far from the cause), and MXNet is not installed
where packaging runs. The file is MXNet's NDArray list (``NDArray::Save``):

* ``uint64 0x112`` (list magic), ``uint64 0`` (reserved), ``uint64 n`` arrays, each:
  ``uint32`` array magic (``0xF993FAC9`` v2, ``0xF993FACA`` v3), ``int32`` storage type
  (0 = dense; sparse arrays are refused), ``uint32 ndim`` + ``int64 dims[ndim]``, and when
  ``ndim > 0``: ``int32 dev_type``, ``int32 dev_id``, ``int32 dtype flag``, the raw data;
* ``uint64 k`` names, each ``uint64 length`` + bytes (``arg:``/``aux:`` prefixes).

Every length is checked against the file size, so a truncated file is reported by name.
"""

from __future__ import annotations

import struct
from pathlib import Path

from ..errors import ExportError

LIST_MAGIC = 0x112
ARRAY_MAGICS = (0xF993FAC9, 0xF993FACA)
#: MXNet dtype flag -> (name, bytes per element)
DTYPES = {
    0: ("float32", 4),
    1: ("float64", 8),
    2: ("float16", 2),
    3: ("uint8", 1),
    4: ("int32", 4),
    5: ("int8", 1),
    6: ("int64", 8),
    7: ("bool", 1),
    12: ("bfloat16", 2),
}


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise self.truncated()
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out

    def skip(self, size: int) -> None:
        if size < 0 or self.pos + size > len(self.data):
            raise self.truncated()
        self.pos += size

    def truncated(self) -> ExportError:
        return ExportError(
            f"{self.path}: the params file is truncated ({len(self.data)} bytes, more expected "
            f"at byte {self.pos}); re-run the MXNet export"
        )


def read_params_index(path: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: (shape, dtype)}`` of every array in an MXNet ``.params`` file."""
    path = Path(path)
    data = path.read_bytes()
    if not data:
        raise ExportError(f"{path}: the params file is empty; re-run the MXNet export")
    r = _Reader(data, path)
    magic, _reserved, count = r.take("<QQQ")
    if magic != LIST_MAGIC:
        raise ExportError(f"{path}: not an MXNet params file (magic {magic:#x}); re-run the export")
    arrays = [_read_array(r, i) for i in range(count)]
    (nkeys,) = r.take("<Q")
    names = []
    for _ in range(nkeys):
        (length,) = r.take("<Q")
        start = r.pos
        r.skip(length)
        names.append(data[start : r.pos].decode("utf-8", "replace"))
    if nkeys != count:
        raise ExportError(f"{path}: {count} arrays but {nkeys} names; re-run the MXNet export")
    if r.pos != len(data):
        raise ExportError(
            f"{path}: {len(data) - r.pos} unexpected trailing bytes; re-run the export"
        )
    return dict(zip(names, arrays))


def _read_array(r: _Reader, index: int) -> tuple[tuple[int, ...], str]:
    magic, stype = r.take("<Ii")
    if magic not in ARRAY_MAGICS:
        raise ExportError(
            f"{r.path}: array {index} is damaged (magic {magic:#x}); re-run the export"
        )
    if stype != 0:
        raise ExportError(f"{r.path}: array {index} is sparse; DeepLens needs dense params")
    (ndim,) = r.take("<I")
    shape = r.take(f"<{ndim}q") if ndim else ()
    if not ndim:
        return (), "none"
    _dev_type, _dev_id, flag = r.take("<iii")
    if flag not in DTYPES:
        raise ExportError(f"{r.path}: array {index} has unknown dtype flag {flag}")
    name, width = DTYPES[flag]
    n = 1
    for d in shape:
        n *= int(d)
    r.skip(n * width)
    return tuple(int(d) for d in shape), name
