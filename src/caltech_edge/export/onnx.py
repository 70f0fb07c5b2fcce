"""PyTorch -> ONNX, with the model card embedded so the file is self-describing.

Two flavours of the same graph:

* the plain ONNX (default) for ONNX Runtime and OpenVINO: initializers are constants,
  so ORT can fold them (the MXNet flavour is 1.4-1.7x slower in ORT, ENVIRONMENT.md);
* ``for_mxnet=True``: ``keep_initializers_as_inputs=True``, which MXNet 1.9's ONNX importer
  needs (``KeyError: 'onnx::Conv_...'`` otherwise). :mod:`caltech_edge.export.mxnet` can
  also rewrite a plain ONNX into this shape, so it is only an input to that import.

The legacy TorchScript exporter (``dynamo=False``) is used on purpose: it produces the
classic opset-13 graphs MXNet and OpenVINO 2024 import, and it needs no ``onnxscript``.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .._io import atomic_write_bytes
from .._registry import require
from ..card import METADATA_KEY, ModelCard
from ..errors import ConfigError, ExportError

if TYPE_CHECKING:  # pragma: no cover
    import onnx
    from torch import nn

INPUT_NAME = "data"
OUTPUT_NAME = "logits"


def opset_range() -> tuple[int, int]:
    """The opsets torch's TorchScript exporter can write (inclusive)."""
    try:
        from torch.onnx import _constants

        low = int(getattr(_constants, "ONNX_MIN_OPSET", 7))
        high = int(
            getattr(
                _constants,
                "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET",
                getattr(_constants, "ONNX_MAX_OPSET", 20),
            )
        )
    except ImportError:  # pragma: no cover - private module moved
        low, high = 7, 20
    return max(low, 9), high  # below 9 torchvision's ops do not export


def check_opset(opset: int) -> int:
    low, high = opset_range()
    try:
        value = int(opset)
    except (TypeError, ValueError):
        value = -1
    if not low <= value <= high:
        raise ConfigError(
            f"unsupported ONNX opset {opset!r}: torch's exporter here writes opsets "
            f"{low}..{high}; 13 (the default) is what MXNet 1.9 and OpenVINO import best"
        )
    return value


def readable_metadata(card: ModelCard) -> dict[str, str]:
    """Flat keys beside the card JSON, for tools (Netron, onnx.load) that show metadata."""
    spec = card.preprocess
    return {
        METADATA_KEY: card.to_json(),
        "arch": card.arch,
        "class_names": json.dumps(list(card.class_names)),
        "num_classes": str(card.num_classes),
        "input_shape": json.dumps(list(card.input_shape)),
        "image_size": str(spec.image_size),
        "resize_size": str(spec.resize_size),
        "mean": json.dumps(list(spec.mean)),
        "std": json.dumps(list(spec.std)),
        "channel_order": spec.channel_order,
        "precision": card.precision,
        "source_sha256": card.source_sha256,
    }


def embed_card(model: onnx.ModelProto, card: ModelCard) -> onnx.ModelProto:
    """Replace the model's metadata_props with the card and its readable keys."""
    del model.metadata_props[:]
    for key, value in readable_metadata(card).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    return model


def save_onnx(model: onnx.ModelProto, path: str | Path) -> Path:
    """``onnx.checker`` then an atomic write (a killed export never leaves half a file)."""
    onnx = require("onnx", "torch", purpose="ONNX export")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ExportError(f"{path}: the ONNX graph fails onnx.checker ({exc})") from exc
    return atomic_write_bytes(path, model.SerializeToString())


def export_onnx(
    model: nn.Module,
    card: ModelCard,
    path: str | Path,
    *,
    opset: int = 13,
    dynamic_batch: bool = False,
    for_mxnet: bool = False,
) -> Path:
    """Export a torch classifier to ONNX with input ``data`` and output ``logits``.

    The input shape comes from ``card.preprocess`` (batch 1, or a dynamic batch axis);
    the card stored inside says ``format="onnx"``, ``precision="fp32"``.
    """
    torch = require("torch", "torch", purpose="ONNX export")
    onnx = require("onnx", "torch", purpose="ONNX export")
    opset = check_opset(opset)
    path = Path(path)
    card = card.replace(format="onnx", precision="fp32", input_name=INPUT_NAME)
    dummy = torch.zeros(card.input_shape, dtype=torch.float32)
    buffer = io.BytesIO()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (dummy,),
                buffer,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamic_axes=(
                    {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
                ),
                do_constant_folding=True,
                keep_initializers_as_inputs=bool(for_mxnet),
                dynamo=False,
            )
    except Exception as exc:
        raise ExportError(
            f"{path}: torch.onnx.export failed for {card.arch} at opset {opset} "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        model.train(was_training)
    proto = onnx.load_from_string(buffer.getvalue())
    proto.producer_name = "caltech-edge"
    embed_card(proto, card)
    return save_onnx(proto, path)


def read_onnx_card(path: str | Path) -> ModelCard:
    """The card embedded in an ONNX file (``onnx`` package; the runtime uses ORT's metadata)."""
    onnx = require("onnx", "torch", purpose="reading ONNX metadata")
    from ..runtime.backends._card import card_from_metadata

    model = onnx.load(str(path), load_external_data=False)
    card = card_from_metadata({p.key: p.value for p in model.metadata_props}, str(path))
    if card is None:
        raise ExportError(f"{path}: no caltech-edge card in metadata_props ({METADATA_KEY})")
    return card


def initializers_as_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """List every initializer as a graph input too (what ``keep_initializers_as_inputs``
    does), so MXNet's importer can bind them as parameters. Modifies and returns ``model``."""
    onnx = require("onnx", "torch", purpose="ONNX export")
    existing = {i.name for i in model.graph.input}
    for init in model.graph.initializer:
        if init.name not in existing:
            model.graph.input.append(
                onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
    return model
