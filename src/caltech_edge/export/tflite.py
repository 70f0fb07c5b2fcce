"""PyTorch -> LiteRT (``.tflite``): FP32, FP16 weights, and full-integer INT8.

Layout: the file takes **NHWC** images (``1 x H x W x 3``), as TFLite users and tools
(the Coral and MediaPipe examples, the Edge TPU compiler, Android's ImageProcessor)
expect; the network itself stays NCHW inside and litert-torch's ``to_channel_last_io``
adds the transpose at the boundary, which the converter folds into the first
convolution. The card records it (``extra["input_layout"] = "NHWC"``) so the runtime
transposes the shared NCHW preprocessing output.

* FP32: ``litert_torch.convert``.
* FP16: the FP32 flatbuffer with FP16 weights and DEQUANTIZE ops in front of them
  (ai-edge-quantizer's ``float_casting``), the classic TFLite FP16 model: half the
  size, FP32 arithmetic on CPUs, FP16 on GPU delegates.
* INT8: PT2E with litert-torch's ``PT2EQuantizer`` (int8 activations per tensor, int8
  weights symmetric per channel), calibrated on training images, recipes searched for
  top-1 agreement (:mod:`caltech_edge.export.pt2e`). Full-integer: int8 input and output
  tensors, or uint8 with ``io_type="uint8"`` (:mod:`.tflite_io`, exact); the runtime
  quantizes with the tensor's own scale/zero point. An Edge TPU
  compatibility report is written beside it (:mod:`caltech_edge.export.edgetpu`).

Every file carries the model card and labels as metadata (:mod:`.tflite_metadata`) and a
``model.card.json`` sidecar.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import atomic_write_bytes
from .._registry import require
from ..card import ModelCard, sidecar_path
from ..errors import ConfigError, ExportError
from .tflite_metadata import embed_tflite_metadata, read_tflite_card

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

log = logging.getLogger(__name__)

INPUT_LAYOUT = "NHWC"
IO_TYPES = ("int8", "uint8")

# Ordered recipes of the accuracy-aware INT8 search (first that reaches the target wins).
# Full-integer first (int8 in, int8 out: every op on the Edge TPU), with the logits on
# their own int8 grid (``own_logit_scale``, compress/float_logits.py; it only changes
# networks whose logits leave a global pool). Min/max first: on the real SqueezeNet it
# kept 98.3% top-1 agreement over the 533 sample photos where histogram kept 97.4% and
# moving average 97.2%. Then float logits: the class scores are not rounded to int8, at
# the price of a float output and, on a Coral, the last op or two (global pool, reshape)
# on the CPU after a DEQUANTIZE; the Edge TPU report lists them. ``--recipe minmax``
# forces full-integer.
INT8_RECIPES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("minmax", {"activation_observer": "minmax"}),
    ("histogram", {"activation_observer": "histogram"}),
    ("moving-average", {"activation_observer": "moving-average"}),
    ("histogram-float-logits", {"activation_observer": "histogram", "float_logits": True}),
    (
        "histogram-per-tensor-float-logits",
        {"activation_observer": "histogram", "per_channel": False, "float_logits": True},
    ),
)

# ai-edge-quantizer recipe: every FC/conv weight to FP16, computed in float.
_FP16_RECIPE = [
    {
        "regex": ".*",
        "operation": "*",
        "algorithm_key": "float_casting",
        "op_config": {
            "weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
            "compute_precision": "FLOAT",
            "explicit_dequantize": True,
        },
    }
]


def static_batch(what: str, dynamic_batch: bool) -> None:
    """Device formats are batch 1 with static shapes (the Edge TPU and Core ML's image
    input need them); ``--dynamic-batch`` applies to the ONNX rows only."""
    if dynamic_batch:
        raise ConfigError(
            f"{what} exports have a static batch of 1; drop --dynamic-batch (it applies to "
            "the onnx rows) or export the device formats in a separate run"
        )


def tflite_card(card: ModelCard, precision: str, **extra: Any) -> ModelCard:
    return card.replace(
        format="tflite",
        precision=precision,
        extra={**card.extra, "input_layout": INPUT_LAYOUT, **extra},
    )


def _nhwc_sample(card: ModelCard) -> Any:
    import torch

    _, c, h, w = card.input_shape
    return torch.zeros((1, h, w, c), dtype=torch.float32)


def _channel_last(model: nn.Module) -> nn.Module:
    litert_torch = require("litert_torch", "litert", purpose="TFLite export")
    return litert_torch.to_channel_last_io(model.eval(), args=[0]).eval()


def _convert(module: Any, sample: Any, *, quant_config: Any = None) -> bytes:
    """litert-torch conversion -> flatbuffer bytes (written through a temporary file)."""
    litert_torch = require("litert_torch", "litert", purpose="TFLite export")
    try:
        edge = litert_torch.convert(module, (sample,), quant_config=quant_config)
        with tempfile.TemporaryDirectory(prefix="ce-tflite-") as tmp:
            edge.export(str(Path(tmp) / "m.tflite"))
            return (Path(tmp) / "m.tflite").read_bytes()
    except Exception as exc:
        raise ExportError(
            f"litert-torch could not convert the model ({type(exc).__name__}: {exc})"
        ) from exc


def _fp16_weights(data: bytes) -> bytes:
    from ai_edge_quantizer import quantizer

    q = quantizer.Quantizer(bytearray(data))
    q.load_quantization_recipe(_FP16_RECIPE)
    return bytes(q.quantize().quantized_model)


def write_tflite(data: bytes, path: Path, card: ModelCard) -> Path:
    """Embed ``card`` (+ labels), write atomically, and the sidecar card beside it."""
    path = Path(path)
    atomic_write_bytes(path, embed_tflite_metadata(data, card))
    card.save(sidecar_path(path))
    return path


def restamp_tflite(path: Path, card: ModelCard) -> None:
    """Re-embed an updated card (the recipe search's result) into the file and sidecar."""
    write_tflite(Path(path).read_bytes(), path, card)


def export_tflite(
    model: nn.Module,
    card: ModelCard,
    path: str | Path,
    *,
    fp16: bool = False,
    opset: int | None = None,
    dynamic_batch: bool = False,
) -> Path:
    """FP32 (or FP16-weight) ``.tflite`` of ``model`` at ``path``, NHWC input, card inside.

    ``opset`` is the ONNX rows' option, accepted (and unused) so every row made from the
    model takes the same keywords."""
    static_batch("TFLite", dynamic_batch)
    module = _channel_last(model)
    data = _convert(module, _nhwc_sample(card))
    if fp16:
        data = _fp16_weights(data)
    out = tflite_card(card, "fp16" if fp16 else "fp32", converter="litert-torch")
    return write_tflite(data, Path(path), out)


def quantize_tflite(
    model: nn.Module,
    card: ModelCard,
    path: str | Path,
    *,
    calibration: Any,
    activation_observer: str = "histogram",
    io_type: str = "int8",
    per_channel: bool = True,
    float_logits: bool = False,
    own_logit_scale: bool = True,
) -> Path:
    """One INT8 ``.tflite`` by PT2E (one recipe; see :func:`export_tflite_int8`).

    Full-integer unless ``float_logits`` (int8 input, the ops after the last reducing op
    in float, float output); ``per_channel``: weight scales per output channel;
    ``own_logit_scale``: logits that leave a global pool get their own min/max int8 scale
    instead of the pool input's (finer steps, fewer ties at the top)."""
    require("litert_torch", "litert", purpose="TFLite INT8 export")
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )
    from litert_torch.quantize.quant_config import QuantConfig

    from .pt2e import quantize_pt2e, with_activation_observer

    check_io_type(io_type)
    config = get_symmetric_quantization_config(is_per_channel=per_channel, is_dynamic=False)
    quantizer = PT2EQuantizer().set_global(with_activation_observer(config, activation_observer))
    sample = _nhwc_sample(card)
    converted = quantize_pt2e(
        _channel_last(model),
        sample,
        quantizer,
        calibration,
        lambda x: x.permute(0, 2, 3, 1),
        fold_quantize=False,
        float_logits=float_logits,
        own_logit_scale=own_logit_scale,
    )
    own_scale = bool(converted.meta.get("own_logit_scale")) and not float_logits
    data = _convert(converted, sample, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    if io_type == "uint8":  # PT2E writes int8 edges; requantize them exactly to uint8
        from .tflite_io import uint8_interface

        data = uint8_interface(data)
    quant = {
        "backend": "litert-pt2e",
        "activations": "int8 per-tensor affine",
        "weights": f"int8 {'per-channel' if per_channel else 'per-tensor'} symmetric",
        "logits": "float" if float_logits else "int8, own scale" if own_scale else "int8",
        "activation_observer": activation_observer,
        "io_type": f"{io_type} input, float output" if float_logits else io_type,
        "calibration_images": len(calibration),
    }
    path = write_tflite(data, Path(path), tflite_card(card, "int8", quantization=quant))
    from .edgetpu import write_compatibility_report

    write_compatibility_report(path)
    return path


def check_io_type(io_type: str) -> str:
    """``int8`` (what litert-torch's PT2E path writes) or ``uint8`` (:mod:`.tflite_io`)."""
    if io_type not in IO_TYPES:
        raise ConfigError(
            f"io_type must be one of {', '.join(IO_TYPES)}; got {io_type!r} "
            "(e.g. --option tflite-int8.io_type=uint8)"
        )
    return io_type


def export_tflite_int8(
    model: nn.Module,
    card: ModelCard,
    path: str | Path,
    *,
    calibration: Any,
    recipe: str | None = None,
    target: float | None = None,
    io_type: str = "int8",
    opset: int | None = None,
    dynamic_batch: bool = False,
    **options: Any,
) -> Path:
    """Full-integer INT8 ``.tflite``: the recipe search over :data:`INT8_RECIPES`."""
    static_batch("TFLite", dynamic_batch)
    from ..runtime.backends import open_runtime
    from .pt2e import search_model_int8

    check_io_type(io_type)

    def infer(p: Path):
        return open_runtime(p, backend="litert").infer

    return search_model_int8(
        "litert",
        functools.partial(quantize_tflite, io_type=io_type),  # keeps the signature checkable
        model,
        card,
        Path(path),
        calibration=calibration,
        recipes=INT8_RECIPES,
        infer=infer,
        restamp=restamp_tflite,
        recipe=recipe,
        target=target,
        **options,
    )


def read_card(path: str | Path) -> ModelCard | None:
    """The card inside a caltech-edge ``.tflite`` (``None`` for foreign files)."""
    return read_tflite_card(path)
