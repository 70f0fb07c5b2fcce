"""ONNX -> explicit-quantization (QDQ) INT8 ONNX that TensorRT builds without a calibration cache.

TensorRT's explicit quantization reads QuantizeLinear/DequantizeLinear pairs from the
graph and needs: **symmetric** int8 (zero point 0; TensorRT has no asymmetric int8),
per-tensor activation scales, per-channel (axis 0) weight scales, and float biases.
ONNX Runtime's static quantizer writes exactly that with ``ActivationSymmetric=True``,
``WeightSymmetric=True``, ``per_channel=True`` and ``QuantizeBias=False``.

Why ONNX Runtime rather than nvidia-modelopt's ONNX PTQ: modelopt's ONNX path is itself
built on ONNX Runtime's calibrators and pulls a large CUDA-oriented dependency set; ONNX
Runtime is a core dependency, and the same graph is verified numerically here with it
(its CPU kernels run the QDQ graph with the same int8 arithmetic TensorRT will use). The
card stores the ``trtexec`` command that builds the engine on the Jetson; an engine is
only built where TensorRT and an NVIDIA GPU are present (never claimed otherwise).

Symmetric activations waste half the int8 range on ReLU outputs, so plain min/max loses
more accuracy than the uint8 ``onnx-int8`` row, and rounding and clipping on a 7-bit grid
shift each channel's mean; the recipes therefore start from percentile calibration with
bias correction and fall back to keeping the most sensitive layers in float.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..card import ModelCard
from ..errors import ConfigError, ExportError

METHODS = ("minmax", "percentile", "entropy")

# Ordered recipes of the accuracy-aware search (first reaching the target is kept). All
# keep the logits in float (compress/float_logits.py: no int8 rounding of the class
# scores). The first also moves the float biases so each layer keeps FP32's mean output
# (compress/bias_correction.py): on the real SqueezeNet that took agreement on the 533
# photos from 97.6 % to 98.5 %. Then the plain calibration methods, then float layers:
# TensorRT runs a QDQ-free layer in FP16 (trtexec --fp16), so the label-free sensitivity
# pass's most damaging layers (compress/sensitivity.py) cost some speed, not a second engine.
_FL = {"float_logits": True}
_BC = {"float_logits": True, "bias_correction": True}
INT8_RECIPES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("percentile-99.999-float-logits-bias-corrected",
     {"method": "percentile", "percentile": 99.999, **_BC}),
    ("percentile-99.999-float-logits", {"method": "percentile", "percentile": 99.999, **_FL}),
    ("percentile-99.99-float-logits", {"method": "percentile", "percentile": 99.99, **_FL}),
    ("minmax-float-logits-bias-corrected", {"method": "minmax", **_BC}),
    ("entropy-float-logits", {"method": "entropy", **_FL}),
    ("percentile-3-sensitive-float", {"method": "percentile", "keep_sensitive": 3, **_BC}),
    ("percentile-6-sensitive-float", {"method": "percentile", "keep_sensitive": 6, **_BC}),
)  # fmt: skip


def trtexec_command(onnx_name: str = "model.onnx", engine: str = "model.engine") -> str:
    """The Jetson-side build: explicit INT8 from the QDQ graph, FP16 for any float layers."""
    return shlex.join(
        ["trtexec", f"--onnx={onnx_name}", "--int8", "--fp16", f"--saveEngine={engine}"]
    )


def quantize_trt_onnx(
    onnx_path: str | Path,
    out_path: str | Path,
    *,
    calibration: Any,
    card: ModelCard | None = None,
    method: str = "percentile",
    percentile: float = 99.999,
    exclude_classifier: bool = False,
    keep_sensitive: int = 0,
    float_logits: bool = False,
    bias_correction: bool = False,
) -> Path:
    """One symmetric QDQ INT8 ONNX (one recipe); ``trtexec.sh`` beside it.

    ``keep_sensitive``: that many of the layers a label-free sensitivity pass finds most
    damaging stay float (FP16 in the engine); ``float_logits``: no rounding of the class
    scores (both as in :func:`caltech_edge.compress.onnx_int8.quantize_onnx`);
    ``bias_correction``: each quantized layer's float bias absorbs the mean shift its
    quantization causes on the calibration images (no labels)."""

    from ..compress._artifact import derived_card, save_onnx_with_card, source_card
    from ..compress.onnx_int8 import qdq_model

    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    src, out = Path(onnx_path), Path(out_path)
    if not src.is_file():
        raise ExportError(f"{src}: ONNX model not found")
    base = source_card(src, card)
    extra = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        "CalibPercentile": float(percentile),
    }
    model, excluded = qdq_model(
        src,
        calibration,
        method=method,
        per_channel=True,
        activation_type="int8",
        weight_type="int8",
        extra=extra,
        exclude_classifier=exclude_classifier,
        float_logits=float_logits,
        keep_sensitive=keep_sensitive,
        bias_correction=bias_correction,
    )
    command = trtexec_command(out.name, out.with_suffix(".engine").name)
    new_card = derived_card(
        base,
        src,
        precision="int8",
        fmt="onnx-trt",
        quantization={
            "backend": "onnxruntime-qdq-symmetric",
            "target": "tensorrt explicit quantization",
            "activations": "int8 symmetric per-tensor",
            "weights": "int8 symmetric per-channel",
            "bias": "float",
            "method": method,
            "percentile": float(percentile) if method == "percentile" else None,
            "excluded_nodes": excluded,
            "logits": "float" if float_logits else "int8",
            "bias_correction": bool(bias_correction),
            "calibration_images": len(calibration),
        },
        trtexec=command,
    )
    save_onnx_with_card(model, out, new_card)
    atomic_write_text(
        out.with_name("trtexec.sh"),
        "#!/bin/sh\n# Build the TensorRT engine on the Jetson (JetPack's trtexec)\n"
        'cd "$(dirname "$0")" && ' + command + "\n",
    )
    return out


def export_trt_int8(
    onnx_path: str | Path,
    out_path: str | Path,
    *,
    calibration: Any,
    card: ModelCard | None = None,
    recipe: str | None = None,
    target: float | None = None,
    **options: Any,
) -> Path:
    """The ``onnx-trt-int8`` row: the recipe search over :data:`INT8_RECIPES`."""
    from ..compress.recipes import (
        DEFAULT_TARGET,
        QuantizerSpec,
        Recipe,
        runtime_infer,
        search_recipes,
    )

    spec = QuantizerSpec(
        "tensorrt-qdq",
        quantize_trt_onnx,
        tuple(Recipe(n, dict(o)) for n, o in INT8_RECIPES),
        infer=runtime_infer,
        restamp=_restamp,
    )
    if recipe is not None and options:
        raise ConfigError("give either recipe= or explicit quantization options, not both")
    chosen = (spec.recipe(recipe),) if recipe else (Recipe("custom", options),) if options else None
    result = search_recipes(
        spec,
        onnx_path,
        out_path,
        calibration=calibration,
        card=card,
        target=DEFAULT_TARGET if target is None else float(target),
        recipes=chosen,
    )
    return result.artifact


def _restamp(path: Path, card: ModelCard) -> None:
    import onnx

    from ..compress._artifact import save_onnx_with_card

    save_onnx_with_card(onnx.load(str(path)), path, card)
