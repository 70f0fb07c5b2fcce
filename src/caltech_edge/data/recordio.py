"""im2rec-compatible ``.lst`` files and MXNet RecordIO ``.rec``/``.idx``, in pure Python.

SageMaker's built-in image-classification algorithm and MXNet's ``ImageRecordIter`` read
these. We write them without MXNet (it is optional and retired) following the formats
exactly, and the tests read what we write back with MXNet's own readers:

* ``.lst``: ``index<TAB>label<TAB>relative/path`` per line, labels formatted ``%f`` as
  ``im2rec.py`` writes them (``3.000000``).
* ``.rec``: dmlc RecordIO: each record is ``kMagic (0xced7230a, uint32 LE)``, ``lrecord``
  (``cflag << 29 | length``), the payload, zero padding to 4 bytes. A payload containing
  the magic word at a 4-byte-aligned offset is split at it into continuation parts
  (cflag 1, 2, 3) exactly as ``dmlc::RecordIOWriter`` does, so readers reassemble it.
* payload: MXNet's ``IRHeader`` (``struct "IfQQ"``: flag, label, id, id2) then the JPEG.
* ``.idx``: ``key<TAB>byte offset`` per record (``MXIndexedRecordIO``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

import cv2
import numpy as np

from ..errors import DatasetError
from .imageio import ImageDecodeError, load_image
from .transforms import center_crop, resize_shorter

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_IR_FORMAT = "IfQQ"
_IR_SIZE = struct.calcsize(_IR_FORMAT)
MAX_RECORD = (1 << 29) - 1


class LstEntry(NamedTuple):
    index: int
    label: float | tuple[float, ...]
    path: str


class RecordHeader(NamedTuple):
    flag: int
    label: float | tuple[float, ...]
    id: int
    id2: int


# -- .lst --------------------------------------------------------------------------------
def format_lst_line(entry: LstEntry) -> str:
    labels = entry.label if isinstance(entry.label, tuple) else (entry.label,)
    return f"{int(entry.index)}\t" + "".join(f"{float(v):f}\t" for v in labels) + f"{entry.path}\n"


def write_lst(path: str | Path, entries: Iterable[LstEntry]) -> Path:
    """Write an im2rec ``.lst`` file (atomically)."""
    from .._io import atomic_write_text

    return atomic_write_text(path, "".join(format_lst_line(e) for e in entries))


def read_lst(path: str | Path) -> list[LstEntry]:
    """Read an im2rec ``.lst`` file; raises DatasetError naming a malformed line."""
    entries = []
    path = Path(path)
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            if len(parts) < 3:
                raise ValueError("expected index, label(s) and path separated by tabs")
            labels = tuple(float(v) for v in parts[1:-1])
            entries.append(
                LstEntry(int(parts[0]), labels[0] if len(labels) == 1 else labels, parts[-1])
            )
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: malformed .lst line {line!r} ({exc})") from exc
    return entries


def lst_entries(dataset, indices: Sequence[int] | None = None) -> list[LstEntry]:
    """Entries for ``indices`` of an ImageDataset (key = dataset index, path relative to root)."""
    chosen = range(len(dataset)) if indices is None else indices
    return [LstEntry(int(i), float(dataset.targets[i]), dataset.relpath(int(i))) for i in chosen]


# -- record framing ----------------------------------------------------------------------
def pack_header(header: RecordHeader, payload: bytes) -> bytes:
    """MXNet's ``recordio.pack``: IRHeader (+ float32 label array if several) + payload."""
    if isinstance(header.label, tuple):
        labels = np.asarray(header.label, dtype=np.float32)
        head = struct.pack(_IR_FORMAT, labels.size, 0.0, header.id, header.id2)
        return head + labels.tobytes() + payload
    return struct.pack(_IR_FORMAT, 0, float(header.label), header.id, header.id2) + payload


def unpack_header(record: bytes) -> tuple[RecordHeader, bytes]:
    flag, label, id_, id2 = struct.unpack(_IR_FORMAT, record[:_IR_SIZE])
    body = record[_IR_SIZE:]
    if flag > 0:
        labels = tuple(float(v) for v in np.frombuffer(body[: 4 * flag], dtype=np.float32))
        return RecordHeader(flag, labels, id_, id2), body[4 * flag :]
    return RecordHeader(flag, label, id_, id2), body


def _frame(cflag: int, data: bytes) -> bytes:
    return _MAGIC_BYTES + struct.pack("<I", (cflag << 29) | len(data)) + data


def frame_record(data: bytes) -> bytes:
    """The bytes ``dmlc::RecordIOWriter::WriteRecord`` writes for one record."""
    if len(data) > MAX_RECORD:
        raise DatasetError(f"a RecordIO record must be < 2^29 bytes, got {len(data)}")
    parts, start = [], 0
    for i in range(0, len(data) - len(data) % 4, 4):
        if data[i : i + 4] == _MAGIC_BYTES:
            parts.append(_frame(1 if start == 0 else 2, data[start:i]))
            start = i + 4
    parts.append(_frame(3 if start else 0, data[start:]))
    pad = (-len(data)) % 4
    return b"".join(parts) + b"\x00" * pad


def _read_record(fh: BinaryIO) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        head = fh.read(8)
        if not head:
            if chunks:
                raise DatasetError("RecordIO file ends inside a split record")
            return None
        if len(head) < 8 or head[:4] != _MAGIC_BYTES:
            raise DatasetError("not a RecordIO stream (bad magic number)")
        lrec = struct.unpack("<I", head[4:])[0]
        cflag, length = lrec >> 29, lrec & MAX_RECORD
        data = fh.read(length)
        fh.read((-length) % 4)
        chunks.append(data)
        if cflag in (0, 3):
            return _MAGIC_BYTES.join(chunks)
        # cflag 1 (first) or 2 (middle): the magic word was cut out here


def iter_records(rec_path: str | Path) -> Iterator[tuple[RecordHeader, bytes]]:
    """Read a ``.rec`` file without MXNet: (header, image bytes) per record."""
    with open(rec_path, "rb") as fh:
        while (record := _read_record(fh)) is not None:
            yield unpack_header(record)


class IndexedRecordWriter:
    """Writes ``.rec`` + ``.idx`` like ``mx.recordio.MXIndexedRecordIO(idx, rec, "w")``.

    Files are written under temporary names and renamed on :meth:`close`, so an
    interrupted job never leaves a .rec that looks complete.
    """

    def __init__(self, idx_path: str | Path, rec_path: str | Path) -> None:
        self.idx_path, self.rec_path = Path(idx_path), Path(rec_path)
        self.rec_path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_rec = self.rec_path.with_name(f".{self.rec_path.name}.{os.getpid()}.tmp")
        self._tmp_idx = self.idx_path.with_name(f".{self.idx_path.name}.{os.getpid()}.tmp")
        self._rec = open(self._tmp_rec, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._idx = open(self._tmp_idx, "w")  # noqa: SIM115
        self.count = 0

    def write(self, key: int, header: RecordHeader, image: bytes) -> None:
        pos = self._rec.tell()
        self._rec.write(frame_record(pack_header(header, image)))
        self._idx.write(f"{int(key)}\t{pos}\n")
        self.count += 1

    def close(self) -> None:
        for fh in (self._rec, self._idx):
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        os.replace(self._tmp_rec, self.rec_path)
        os.replace(self._tmp_idx, self.idx_path)

    def abort(self) -> None:
        for fh, tmp in ((self._rec, self._tmp_rec), (self._idx, self._tmp_idx)):
            fh.close()
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> IndexedRecordWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def encode_jpeg(
    rgb: np.ndarray, *, resize: int = 0, crop: bool = False, quality: int = 95
) -> bytes:
    """JPEG bytes of an RGB image, optionally with the shorter side resized (im2rec --resize)
    and center-cropped to a square (im2rec --center-crop)."""
    if resize:
        rgb = resize_shorter(rgb, int(resize))
    if crop:
        rgb = center_crop(rgb, min(rgb.shape[:2]))
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 images
        raise DatasetError("JPEG encoding failed")
    return buf.tobytes()


def write_rec(
    dataset,
    prefix: str | Path,
    *,
    indices: Sequence[int] | None = None,
    resize: int = 0,
    center_crop: bool = False,
    quality: int = 95,
    progress: bool = True,
) -> tuple[Path, Path, Path]:
    """Write ``prefix.lst``, ``prefix.rec`` and ``prefix.idx`` for ``indices`` of ``dataset``.

    Every image is decoded (grayscale/CMYK/PNG become RGB) and re-encoded as JPEG, so the
    RecordIO holds only images MXNet decodes to 3 channels. A file that fails to decode
    here is left out of all three files and reported in ``dataset.skipped``.
    """
    from tqdm import tqdm

    prefix = Path(prefix)
    lst, rec, idx = (prefix.with_name(prefix.name + ext) for ext in (".lst", ".rec", ".idx"))
    entries = lst_entries(dataset, indices)
    written = []
    with IndexedRecordWriter(idx, rec) as writer:
        for entry in tqdm(entries, desc="rec", unit="img", disable=not progress):
            path = dataset.root / entry.path
            try:
                rgb = load_image(path, max_pixels=dataset.max_pixels)
            except ImageDecodeError as exc:
                dataset.record_failure(path, exc.reason)
                continue
            image = encode_jpeg(rgb, resize=resize, crop=center_crop, quality=quality)
            writer.write(entry.index, RecordHeader(0, entry.label, entry.index, 0), image)
            written.append(entry)
    write_lst(lst, written)
    return lst, rec, idx
