"""The model card and labels inside a ``.tflite`` file, as flatbuffer metadata entries.

A TFLite model has a ``metadata`` vector of ``(name, buffer)`` pairs that every runtime
carries along and ignores unless asked. caltech-edge writes two entries:

* ``caltech_edge.card``: the card JSON (:data:`caltech_edge.card.METADATA_KEY`), so the
  file alone says its classes, preprocessing, layout (``extra["input_layout"]``) and
  quantization;
* ``labels.txt``: the class names, one per line, for tools that only want labels.

Why not the TFLite Support ``TFLITE_METADATA`` schema: writing it needs ``tflite-support``
(unmaintained, not installable with numpy 2 here); a plain named entry is part of the core
TFLite schema, survives every converter/runtime, and is read here without TensorFlow.

Reading goes through the runtime's torch-free flatbuffer reader
(:mod:`caltech_edge.runtime.backends._tflite_meta`); writing needs ``ai_edge_litert``'s
generated schema. Python 3.8-compatible source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

from ..card import METADATA_KEY, ModelCard
from ..errors import ExportError

LABELS_KEY = "labels.txt"
PathLike = Union[str, Path]


def read_tflite_metadata(path: PathLike) -> Dict[str, bytes]:
    """Every ``name -> bytes`` metadata entry of the ``.tflite`` at ``path``.

    The runtime's own bounds-checked flatbuffer reader (one decoder for the file, no
    TensorFlow or ``flatbuffers`` package needed on the device)."""
    from ..runtime.backends._tflite_meta import tflite_metadata

    return tflite_metadata(path)


def read_tflite_card(path: PathLike) -> Optional[ModelCard]:
    """The card embedded by :func:`embed_tflite_metadata`, or ``None`` when there is none."""
    text = read_tflite_metadata(path).get(METADATA_KEY)
    if not text:
        return None
    return ModelCard.from_json(text.decode("utf-8"), "{} [{}]".format(path, METADATA_KEY))


def embed_tflite_metadata(model_bytes: bytes, card: ModelCard) -> bytes:
    """``model_bytes`` with the card and labels entries set (replacing earlier ones)."""
    try:
        import numpy as np
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError as exc:
        raise ExportError(
            "embedding the card in a .tflite needs ai-edge-litert "
            "(pip install 'caltech-edge[litert]')"
        ) from exc
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    entries = {
        METADATA_KEY: card.to_json().encode("utf-8"),
        LABELS_KEY: "".join(name + "\n" for name in card.class_names).encode("utf-8"),
    }
    kept = [m for m in (model.metadata or []) if _name(m.name) not in entries]
    for name, payload in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(payload, dtype=np.uint8)
        model.buffers.append(buffer)
        meta = schema.MetadataT()
        meta.name, meta.buffer = name, len(model.buffers) - 1
        kept.append(meta)
    model.metadata = kept
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name(value: Union[str, bytes, None]) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value or "")
