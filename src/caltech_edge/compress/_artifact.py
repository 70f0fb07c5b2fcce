"""Cards for compressed artifacts: read the source's card, write the derived one.

A quantized file carries the same card as its source (classes, preprocessing) with its
own precision, format and the hash of the file it was made from, embedded (ONNX
``metadata_props`` / OpenVINO ``rt_info``) and as a ``<stem>.card.json`` sidecar.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .._io import sha256_file
from ..card import METADATA_KEY, ModelCard, card_for, sidecar_path
from ..errors import ExportError, ModelCardError


def source_card(path: str | Path, card: ModelCard | None = None) -> ModelCard:
    """The card of a source ONNX/IR file: explicit, embedded, or beside it."""
    if card is not None:
        return card
    path = Path(path)
    if path.suffix == ".onnx":
        from ..export.onnx import read_onnx_card

        try:
            return read_onnx_card(path)
        except ExportError:
            pass  # no embedded card: fall back to the sidecar below
    elif path.suffix == ".xml":
        import openvino as ov

        model = ov.Core().read_model(str(path))
        if model.has_rt_info(METADATA_KEY):
            value = model.get_rt_info(METADATA_KEY)
            text = value.astype(str) if hasattr(value, "astype") else str(value)
            return ModelCard.from_json(text, f"{path} [rt_info]")
    try:
        return card_for(path)
    except ModelCardError as exc:
        raise ModelCardError(
            f"{path}: no model card inside or beside it; export it with `caltech-edge export` "
            f"or pass card= ({exc})"
        ) from None


def derived_card(
    card: ModelCard, source: str | Path, *, precision: str, fmt: str, **extra: Any
) -> ModelCard:
    """``card`` for a file made from ``source``.

    ``source_sha256`` keeps pointing at the training checkpoint (the lineage every
    artifact of one model shares); the hash of the immediate FP32 parent goes to
    ``extra["parent_sha256"]``. A source without a checkpoint hash gets the parent's.
    """
    parent = sha256_file(source)
    return card.replace(
        precision=precision,
        format=fmt,
        source_sha256=card.source_sha256 or parent,
        extra={**card.extra, **extra, "parent_sha256": parent, "parent": Path(source).name},
    )


def save_onnx_with_card(model, path: str | Path, card: ModelCard) -> Path:
    """Embed ``card`` (export.onnx's metadata layout), check, write atomically + sidecar."""
    from ..export.onnx import embed_card, save_onnx

    embed_card(model, card)
    save_onnx(model, path)
    card.save(sidecar_path(path))
    return Path(path)


def save_openvino(model, out_xml: str | Path, card: ModelCard, *, fp16: bool = False) -> Path:
    """Save an IR with ``card`` in rt_info; .xml/.bin appear together or not at all."""
    import openvino as ov

    out_xml = Path(out_xml)
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    model.set_rt_info(card.to_json(), METADATA_KEY)
    tmp = Path(tempfile.mkdtemp(prefix=".ov-", dir=out_xml.parent))
    try:
        ov.save_model(model, str(tmp / out_xml.name), compress_to_fp16=fp16)
        os.replace(tmp / out_xml.with_suffix(".bin").name, out_xml.with_suffix(".bin"))
        os.replace(tmp / out_xml.name, out_xml)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    card.save(sidecar_path(out_xml))
    return out_xml
