"""Read the metadata and custom ops of a ``.tflite`` flatbuffer in plain Python.

The model card travels inside the TFLite file as a named metadata buffer (the slot the
TFLite Support metadata uses). Neither ``ai_edge_litert``'s nor ``tflite_runtime``'s
Interpreter exposes metadata, and a Raspberry Pi or Coral image should not need the
``flatbuffers`` package or TensorFlow just to read a few hundred bytes of JSON, so this
module walks the flatbuffer itself: only the fields of the TFLite schema it needs
(``Model.metadata``, ``Model.buffers``, ``Model.operator_codes``), with bounds checks, because
a model file is input we do not trust. Python 3.8-compatible, numpy-free.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Dict, List, Optional, Union

from ...errors import BackendError

# Field indices in the TFLite schema (tensorflow/lite/schema/schema.fbs).
_MODEL_OPERATOR_CODES, _MODEL_BUFFERS, _MODEL_METADATA = 1, 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_OPCODE_CUSTOM = 1

#: The custom op ``edgetpu_compiler`` puts in a model; only the Edge TPU delegate runs it.
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"


class _Flatbuffer:
    """Just enough flatbuffer decoding for tables, vectors, strings and scalars."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source

    def _u(self, fmt: str, pos: int) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            raise BackendError(
                "{}: not a valid TFLite flatbuffer (offset {} out of range); re-export the "
                "model".format(self.source, pos)
            )
        return struct.unpack_from(fmt, self.data, pos)[0]

    def root(self) -> int:
        return self._u("<I", 0)

    def _field(self, table: int, index: int) -> Optional[int]:
        vtable = table - self._u("<i", table)
        vsize = self._u("<H", vtable)
        slot = 4 + 2 * index
        if slot >= vsize:
            return None
        off = self._u("<H", vtable + slot)
        return table + off if off else None

    def scalar(self, table: int, index: int, fmt: str, default: int = 0) -> int:
        pos = self._field(table, index)
        return default if pos is None else self._u(fmt, pos)

    def _indirect(self, pos: int) -> int:
        return pos + self._u("<I", pos)

    def vector(self, table: int, index: int) -> List[int]:
        """Positions of a vector's elements (tables are followed to their start)."""
        pos = self._field(table, index)
        if pos is None:
            return []
        vec = self._indirect(pos)
        n = self._u("<I", vec)
        if n > len(self.data):
            raise BackendError("{}: corrupt TFLite vector length {}".format(self.source, n))
        return [self._indirect(vec + 4 + 4 * i) for i in range(n)]

    def blob(self, table: int, index: int) -> bytes:
        """A string or ``[ubyte]`` field as bytes (empty when absent)."""
        pos = self._field(table, index)
        if pos is None:
            return b""
        vec = self._indirect(pos)
        n = self._u("<I", vec)
        if vec + 4 + n > len(self.data):
            raise BackendError("{}: corrupt TFLite buffer of {} bytes".format(self.source, n))
        return self.data[vec + 4 : vec + 4 + n]


def _read(path: Union[str, Path]) -> _Flatbuffer:
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise BackendError(
            "{}: not a TFLite model (no TFL3 file identifier); pass a .tflite written by "
            "caltech-edge export --to tflite".format(path)
        )
    return _Flatbuffer(data, str(path))


def tflite_metadata(path: Union[str, Path]) -> Dict[str, bytes]:
    """``{name: bytes}`` of every metadata entry of a ``.tflite`` file."""
    fb = _read(path)
    model = fb.root()
    buffers = fb.vector(model, _MODEL_BUFFERS)
    out = {}  # type: Dict[str, bytes]
    for entry in fb.vector(model, _MODEL_METADATA):
        name = fb.blob(entry, _METADATA_NAME).decode("utf-8", "replace")
        index = fb.scalar(entry, _METADATA_BUFFER, "<I")
        if index >= len(buffers):
            continue
        buf = buffers[index]
        offset = fb.scalar(buf, _BUFFER_OFFSET, "<Q")
        if offset > 1:  # large models keep buffers after the flatbuffer (offset/size)
            size = fb.scalar(buf, _BUFFER_SIZE, "<Q")
            out[name] = fb.data[offset : offset + size]
        else:
            out[name] = fb.blob(buf, _BUFFER_DATA)
    return out


def tflite_custom_ops(path: Union[str, Path]) -> List[str]:
    """Names of the custom ops a ``.tflite`` uses (``edgetpu-custom-op`` after compiling)."""
    fb = _read(path)
    codes = fb.vector(fb.root(), _MODEL_OPERATOR_CODES)
    names = [fb.blob(code, _OPCODE_CUSTOM).decode("utf-8", "replace") for code in codes]
    return [n for n in names if n]
