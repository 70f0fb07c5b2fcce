"""ONNX -> OpenVINO IR (``.xml`` + ``.bin``), FP32 or FP16 weights, card in ``rt_info``.

The ONNX is read with OpenVINO's ONNX front end (``Core.read_model``; ``convert_model``
would also probe the file with torch's loaders when torch is imported), the card JSON is
stored under :data:`caltech_edge.card.METADATA_KEY` in the model's ``rt_info`` and the IR
is saved with ``compress_to_fp16`` as asked. OpenVINO 2023+ has no MXNet front end, so IR
of a Gluon model also goes through ONNX.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .._registry import require
from ..card import METADATA_KEY, ModelCard, sidecar_path
from ..errors import ExportError


def onnx_to_openvino(
    onnx_path: str | Path, xml_path: str | Path, *, card: ModelCard, fp16: bool = False
) -> Path:
    """Convert ``onnx_path`` to IR at ``xml_path`` (a ``.xml``; a folder gets ``model.xml``)."""
    ov = require("openvino", "openvino", purpose="OpenVINO IR export")
    xml_path = Path(xml_path)
    if xml_path.is_dir() or xml_path.suffix != ".xml":
        xml_path = xml_path / "model.xml"
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    card = card.replace(format="openvino", precision="fp16" if fp16 else "fp32")
    try:
        model = ov.Core().read_model(str(onnx_path))
    except Exception as exc:
        raise ExportError(f"{onnx_path}: OpenVINO cannot read this ONNX ({exc})") from exc
    model.set_rt_info(card.to_json(), METADATA_KEY)
    with tempfile.TemporaryDirectory(prefix=".openvino-", dir=str(xml_path.parent)) as tmp:
        tmp_xml = Path(tmp) / "model.xml"
        try:
            ov.save_model(model, str(tmp_xml), compress_to_fp16=bool(fp16))
        except Exception as exc:
            raise ExportError(f"{xml_path}: OpenVINO could not save the IR ({exc})") from exc
        os.replace(tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        os.replace(tmp_xml, xml_path)
    card.save(sidecar_path(xml_path))
    return xml_path
