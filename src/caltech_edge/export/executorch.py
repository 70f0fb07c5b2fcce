"""PyTorch -> ExecuTorch (``.pte``) lowered to XNNPACK: FP32, and INT8 by PT2E.

``torch.export`` -> ``to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()])``
-> ``.to_executorch()``: every op XNNPACK supports is delegated to it (the whole graph
for the torchvision classifiers), the rest stays in ExecuTorch's portable kernels. The
input is NCHW float32 like the ONNX export (ExecuTorch users feed torch-layout tensors).

INT8: ExecuTorch's ``XNNPACKQuantizer`` (int8 activations per tensor, int8 weights
symmetric per channel) through PT2E (:mod:`caltech_edge.export.pt2e`), calibrated on
training images, recipes searched for top-1 agreement. Input and output stay float; the
quantize/dequantize ops at the edges run inside the XNNPACK delegate.

A ``.pte`` has no free-form metadata slot that its Python runtime reads back, so the
card travels as the ``model.card.json`` sidecar (like MXNet's symbol/params).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import atomic_write_bytes
from .._registry import require
from ..card import ModelCard, sidecar_path
from ..errors import ExportError
from .tflite import static_batch

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

# Ordered recipes of the accuracy-aware INT8 search (first reaching the target is kept).
# Float logits first: rounding the class scores to int8 was most of the measured
# disagreement and the fp32 tail costs no speed (compress/float_logits.py). Keeping a
# whole layer in float is not offered: XNNPACKQuantizer.set_module_name(name, None) is
# "not supported yet" in ExecuTorch 1.5, and on the real SqueezeNet no single layer
# carried the error (a label-free sensitivity pass found gains under 1e-4).
INT8_RECIPES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("histogram-float-logits", {"activation_observer": "histogram", "float_logits": True}),
    (
        "histogram-per-tensor-float-logits",
        {"activation_observer": "histogram", "per_channel": False, "float_logits": True},
    ),
    ("histogram", {"activation_observer": "histogram"}),
    ("minmax", {"activation_observer": "minmax"}),
    ("moving-average", {"activation_observer": "moving-average"}),
)


def _sample(card: ModelCard) -> Any:
    import torch

    return torch.zeros(card.input_shape, dtype=torch.float32)


def _lower(module: Any, sample: Any) -> bytes:
    import torch

    require("executorch", "executorch", purpose="ExecuTorch export")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    try:
        program = torch.export.export(module, (sample,))
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        return bytes(lowered.to_executorch().buffer)
    except Exception as exc:
        raise ExportError(
            f"ExecuTorch could not lower the model to XNNPACK ({type(exc).__name__}: {exc})"
        ) from exc


def _write(data: bytes, path: Path, card: ModelCard) -> Path:
    atomic_write_bytes(path, data)
    card.save(sidecar_path(path))
    return path


def export_executorch(
    model: nn.Module,
    card: ModelCard,
    path: str | Path,
    *,
    opset: int | None = None,
    dynamic_batch: bool = False,
) -> Path:
    """FP32 ``.pte`` of ``model`` with XNNPACK delegation; card as sidecar."""
    static_batch("ExecuTorch", dynamic_batch)
    data = _lower(model.eval(), _sample(card))
    out = card.replace(
        format="executorch",
        precision="fp32",
        extra={**card.extra, "input_layout": "NCHW", "delegate": "xnnpack"},
    )
    return _write(data, Path(path), out)


def quantize_executorch(
    model: nn.Module,
    card: ModelCard,
    path: str | Path,
    *,
    calibration: Any,
    activation_observer: str = "histogram",
    per_channel: bool = True,
    float_logits: bool = False,
) -> Path:
    """One INT8 ``.pte`` by PT2E + XNNPACKQuantizer (one recipe).

    ``per_channel``: weight scales per output channel (else one per tensor);
    ``float_logits``: the ops after the last reducing op (global pool, classifier output)
    run in fp32 instead of rounding the logits to int8."""
    require("executorch", "executorch", purpose="ExecuTorch INT8 export")
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    from .pt2e import quantize_pt2e, with_activation_observer

    config = with_activation_observer(
        get_symmetric_quantization_config(is_per_channel=per_channel), activation_observer
    )
    quantizer = XNNPACKQuantizer().set_global(config)
    sample = _sample(card)
    converted = quantize_pt2e(
        model.eval(), sample, quantizer, calibration, lambda x: x, float_logits=float_logits
    )
    data = _lower(converted, sample)
    quant = {
        "backend": "executorch-xnnpack-pt2e",
        "activations": "int8 per-tensor affine",
        "weights": f"int8 {'per-channel' if per_channel else 'per-tensor'} symmetric",
        "logits": "float" if float_logits else "int8",
        "activation_observer": activation_observer,
        "calibration_images": len(calibration),
    }
    out = card.replace(
        format="executorch",
        precision="int8",
        extra={**card.extra, "input_layout": "NCHW", "delegate": "xnnpack", "quantization": quant},
    )
    return _write(data, Path(path), out)


def _restamp(path: Path, card: ModelCard) -> None:
    card.save(sidecar_path(path))


def export_executorch_int8(
    model: nn.Module,
    card: ModelCard,
    path: str | Path,
    *,
    calibration: Any,
    recipe: str | None = None,
    target: float | None = None,
    opset: int | None = None,
    dynamic_batch: bool = False,
    **options: Any,
) -> Path:
    """INT8 ``.pte``: the recipe search over :data:`INT8_RECIPES`."""
    static_batch("ExecuTorch", dynamic_batch)
    from ..runtime.backends import open_runtime
    from .pt2e import search_model_int8

    def infer(p: Path):
        return open_runtime(p, backend="executorch").infer

    return search_model_int8(
        "executorch",
        quantize_executorch,
        model,
        card,
        Path(path),
        calibration=calibration,
        recipes=INT8_RECIPES,
        infer=infer,
        restamp=_restamp,
        recipe=recipe,
        target=target,
        **options,
    )
