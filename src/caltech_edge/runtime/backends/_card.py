"""Read the model card an artifact carries: embedded (ONNX, IR) or beside it (sidecar).

One reader per format. The embedded card wins because it cannot drift from the weights;
a sidecar ``<stem>.card.json`` or ``card.json`` in the artifact's folder is the fallback
(MXNet's symbol/params have no metadata slot; third-party tools may drop ONNX metadata).
Python 3.8-compatible; imports no framework at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Union

from ...card import METADATA_KEY, ModelCard, card_for
from ...errors import ModelCardError

PathLike = Union[str, Path]


def card_from_metadata(metadata: Mapping[str, Any], source: str) -> Optional[ModelCard]:
    """The card stored under :data:`METADATA_KEY` in a key/value map, or ``None``."""
    text = metadata.get(METADATA_KEY) if metadata else None
    if not text:
        return None
    return ModelCard.from_json(str(text), "{} [{}]".format(source, METADATA_KEY))


def _fallback(path: Path, embedded_where: str) -> ModelCard:
    try:
        return card_for(path)
    except ModelCardError as exc:
        raise ModelCardError(
            "{}: no model card inside the {} and none beside it; export it with caltech-edge "
            "or pass card=ModelCard(...) explicitly ({})".format(path, embedded_where, exc)
        ) from None


def onnx_card_from_session(session: Any, path: PathLike) -> ModelCard:
    """Card from an ``onnxruntime.InferenceSession``'s custom metadata (no ``onnx`` needed)."""
    path = Path(path)
    meta = session.get_modelmeta().custom_metadata_map
    card = card_from_metadata(meta, str(path))
    return card if card is not None else _fallback(path, "ONNX metadata_props")


def openvino_card_from_model(model: Any, path: PathLike) -> ModelCard:
    """Card from an OpenVINO ``Model``'s ``rt_info`` (set by caltech-edge's IR export)."""
    path = Path(path)
    if model.has_rt_info(METADATA_KEY):
        value = model.get_rt_info(METADATA_KEY)
        text = value.astype(str) if hasattr(value, "astype") else str(value)
        return ModelCard.from_json(text, "{} [rt_info {}]".format(path, METADATA_KEY))
    return _fallback(path, "IR rt_info")


def sidecar_card(path: PathLike) -> ModelCard:
    """Card of an artifact without a metadata slot (MXNet symbol/params)."""
    return _fallback(Path(path), "MXNet symbol/params (they have no metadata slot)")
