"""OpenVINO INT8 through NNCF post-training quantization, optionally accuracy-controlled.

``nncf.quantize`` inserts FakeQuantize nodes from calibration statistics (the fastest
path on this CPU: ResNet-18 ~1.7 ms vs 12.6 ms for ONNX Runtime FP32). With
``max_drop`` it runs ``nncf.quantize_with_accuracy_control`` instead: layers whose
quantization costs the most top-1 on the validation set are reverted to floating point
until the drop is at most ``max_drop`` (absolute, 0.01 = one point).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .._registry import require
from ..card import ModelCard
from ..errors import ConfigError, ExportError
from ._artifact import derived_card, save_openvino, source_card
from .recipes import QuantizerSpec, Recipe

log = logging.getLogger(__name__)

PRESETS = ("performance", "mixed")
_WEIGHTED = ("MatMul", "Convolution")
_PASS = (
    "Add",
    "Multiply",
    "Relu",
    "ReduceMean",
    "Reshape",
    "Squeeze",
    "AvgPool",
    "Result",
    "Convert",
)


def classifier_op(model) -> str:
    """Friendly name of the last MatMul/Convolution before the model output."""
    node = model.outputs[0].get_node()
    for _ in range(64):
        if node.get_type_name() in _WEIGHTED:
            return node.get_friendly_name()
        if node.get_type_name() not in _PASS and node.get_type_name() != "Result":
            break
        node = node.input_value(0).get_node()
    raise ExportError("could not find the classifier (MatMul/Convolution) before the output")


def first_conv_op(model) -> str:
    """Friendly name of the first Convolution in execution order: the stem."""
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Convolution":
            return op.get_friendly_name()
    raise ExportError("no Convolution to keep in float (is this an image classifier?)")


def float_weight_ops(model) -> list[str]:
    """Convolutions/MatMuls whose weights reach them as plain float constants.

    Why: after NNCF, quantized weights arrive through a FakeQuantize or an int8
    Constant -> Convert -> Multiply chain; a layer reverted or excluded keeps its float
    Constant. This is how the card says which layers accuracy control left in float.
    """
    ov = require("openvino", "openvino", "OpenVINO INT8 quantization")
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in (*_WEIGHTED, "GroupConvolution") and op.get_input_size() > 1:
            weight = op.input_value(1).get_node()
            if weight.get_type_name() == "Constant" and weight.get_output_element_type(0) in (
                ov.Type.f32,
                ov.Type.f16,
            ):
                names.append(op.get_friendly_name())
    return names


RANGES = ("minmax", "mean_minmax", "mean_quantile", "histogram")
MODEL_TYPES = ("cnn", "transformer")


def _nncf_kwargs(
    nncf, model, *, preset, subset, fast_bias_correction, excluded, ranges, model_type
):
    """``nncf.quantize`` keyword arguments for one recipe (see :data:`RECIPES`)."""
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    if ranges not in RANGES:
        raise ConfigError(f"ranges must be one of {', '.join(RANGES)}; got {ranges!r}")
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"model_type must be one of {', '.join(MODEL_TYPES)}; got {model_type!r}")
    kwargs: dict[str, Any] = {
        "preset": getattr(nncf.QuantizationPreset, preset.upper()),
        "subset_size": subset,
        "fast_bias_correction": fast_bias_correction,
        "ignored_scope": nncf.IgnoredScope(names=excluded) if excluded else None,
    }
    if model_type == "transformer":  # enables SmoothQuant on MatMuls
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    if ranges != "minmax":
        kwargs["advanced_parameters"] = nncf.AdvancedQuantizationParameters(
            activations_range_estimator_params=getattr(RangeEstimatorParametersSet, ranges.upper())
        )
    return kwargs


def top1_validation_fn(compiled_model, data: Iterable[Any]) -> float:
    """NNCF validation function: top-1 of ``compiled_model`` over (images, labels) items."""
    correct = total = 0
    output = compiled_model.outputs[0]
    for images, labels in data:
        logits = compiled_model(np.ascontiguousarray(images, np.float32))[output]
        correct += int((np.argmax(logits, axis=1) == np.asarray(labels)).sum())
        total += len(labels)
    return correct / total if total else 0.0


def fp32_labelled(ov, model, calibration) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, FP32 top-1) pairs over the calibration images: labels without labels."""
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    output = compiled.outputs[0]
    pairs = []
    for batch in calibration:
        for img in batch:
            x = np.ascontiguousarray(img[None], np.float32)
            pairs.append((x, np.argmax(compiled(x)[output], axis=1)))
    calibration.rewind()
    return pairs


def quantize_openvino(
    source: str | Path,
    out_xml: str | Path,
    *,
    calibration,
    card: ModelCard | None = None,
    max_drop: float | None = None,
    validation: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
    subset_size: int = 300,
    exclude_classifier: bool = False,
    exclude_first: bool = False,
    preset: str = "performance",
    fast_bias_correction: bool = True,
    ranges: str = "minmax",
    model_type: str = "cnn",
    fp32_max_drop: float | None = None,
    **_options: Any,
) -> Path:
    """INT8 IR of ``source`` (an IR .xml or an .onnx) written to ``out_xml`` with its card.

    ``calibration``: a :class:`~caltech_edge.data.calibration.CalibrationReader` over
    training images. ``validation``: re-iterable (images NCHW, labels) batches, required
    with ``max_drop``; use held-out training or validation images, never the test split.
    ``preset`` "mixed" = asymmetric activations; ``ranges`` the activation range estimator;
    ``model_type`` "transformer" turns on SmoothQuant; ``exclude_first`` /
    ``exclude_classifier`` keep the stem / last layer in float (:data:`RECIPES` orders them).
    ``fp32_max_drop``: NNCF accuracy control with no labels: the FP32 model's own top-1 on
    the calibration images is the label set (FP32 scores 1.0 on it), so NNCF ranks layers
    by how much they cost *agreement* and reverts the worst to float until the drop is
    at most this much.
    """
    nncf = require("nncf", "openvino", "OpenVINO INT8 quantization")
    ov = require("openvino", "openvino", "OpenVINO INT8 quantization")
    _check_options(preset, max_drop, validation)
    src = Path(source)
    if not src.is_file():
        raise ExportError(f"{src}: source model not found")
    base = source_card(src, card)
    model = ov.Core().read_model(str(src))
    if fp32_max_drop is not None and max_drop is None:
        max_drop, validation = float(fp32_max_drop), fp32_labelled(ov, model, calibration)
    excluded = [classifier_op(model)] if exclude_classifier else []
    excluded += [first_conv_op(model)] if exclude_first else []
    dataset = calibration.nncf_dataset()
    subset = max(1, min(int(subset_size), len(calibration)))
    kwargs = _nncf_kwargs(
        nncf,
        model,
        preset=preset,
        subset=subset,
        fast_bias_correction=fast_bias_correction,
        excluded=excluded,
        ranges=ranges,
        model_type=model_type,
    )
    quantized = _run_nncf(nncf, src, model, dataset, validation, max_drop, kwargs)
    new_card = derived_card(
        base,
        src,
        precision="int8",
        fmt="openvino",
        quantization={
            "backend": "openvino-nncf",
            "preset": preset,
            "subset_size": subset,
            "fast_bias_correction": fast_bias_correction,
            "ranges": ranges,
            "model_type": model_type,
            "max_drop": max_drop,
            "fp32_labels": fp32_max_drop is not None,
            "excluded_nodes": excluded,
            "float_layers": float_weight_ops(quantized),
            "calibration_images": len(calibration),
        },
    )
    # The card object must not be stored into rt_info of the *source* model by accident.
    out = save_openvino(quantized, out_xml, new_card)
    log.info("INT8 IR written to %s", out)
    return out


def _check_options(preset: str, max_drop: float | None, validation: Any) -> None:
    if preset not in PRESETS:
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)}; got {preset!r}")
    if max_drop is not None and not 0.0 <= float(max_drop) < 1.0:
        raise ConfigError(f"max_drop is an absolute top-1 drop in [0, 1); got {max_drop}")
    if max_drop is not None and validation is None:
        raise ConfigError(
            "max_drop needs validation data (labelled images held out from calibration)"
        )


def _run_nncf(
    nncf: Any,
    src: Path,
    model: Any,
    dataset: Any,
    validation: Any,
    max_drop: float | None,
    kwargs: dict[str, Any],
) -> Any:
    """``nncf.quantize``, or its accuracy control when a drop budget is given; NNCF's own
    failures become one ExportError naming the source model."""
    try:
        if max_drop is None:
            return nncf.quantize(model, dataset, **kwargs)
        return nncf.quantize_with_accuracy_control(
            model,
            dataset,
            nncf.Dataset(validation),
            validation_fn=lambda compiled, data: top1_validation_fn(compiled, data),
            max_drop=float(max_drop),
            drop_type=nncf.DropType.ABSOLUTE,
            **kwargs,
        )
    except (ConfigError, ExportError):
        raise
    except Exception as exc:
        raise ExportError(f"{src}: NNCF quantization failed ({type(exc).__name__}: {exc})") from exc


def fp16_ir(source: str | Path, out_xml: str | Path, *, card: ModelCard | None = None) -> Path:
    """IR with FP16 weights (half the file; the CPU plugin still computes in f32/bf16).

    From ONNX this is the export stage's converter (``onnx_to_openvino(fp16=True)``); an
    existing FP32 IR is re-saved with compressed weights.
    """
    ov = require("openvino", "openvino", "FP16 IR")
    src = Path(source)
    base = source_card(src, card)
    if src.suffix == ".onnx":
        from ..export.openvino import onnx_to_openvino

        return onnx_to_openvino(src, out_xml, card=base, fp16=True)
    model = ov.Core().read_model(str(src))
    new_card = derived_card(base, src, precision="fp16", fmt="openvino")
    return save_openvino(model, out_xml, new_card, fp16=True)


def restamp_openvino(path: Path, card: ModelCard) -> None:
    """Rewrite the card in an IR's rt_info (and its sidecar) after the recipe search."""
    ov = require("openvino", "openvino", "OpenVINO INT8 quantization")
    save_openvino(ov.Core().read_model(str(path)), path, card)


# Best first: NNCF's default, then asymmetric activations ("mixed"), full bias correction,
# outlier-robust ranges, then layers kept in float (fixed ones, then the ones NNCF's
# accuracy control finds sensitive, scored against FP32's own top-1: no labels); SmoothQuant (transformer model type)
# only changes MatMul-heavy networks and comes last.
RECIPES: tuple[Recipe, ...] = (
    Recipe("default", {}),
    Recipe("mixed-asymmetric-activations", {"preset": "mixed"}),
    Recipe("full-bias-correction", {"preset": "mixed", "fast_bias_correction": False}),
    Recipe("mean-quantile-ranges", {"preset": "mixed", "ranges": "mean_quantile"}),
    Recipe("classifier-float", {"preset": "mixed", "exclude_classifier": True}),
    Recipe(
        "stem-classifier-float",
        {"preset": "mixed", "exclude_first": True, "exclude_classifier": True},
    ),
    Recipe("accuracy-control-fp32-labels", {"preset": "mixed", "fp32_max_drop": 0.01}),
    Recipe("smoothquant", {"preset": "mixed", "model_type": "transformer"}),
)
SPEC = QuantizerSpec("openvino", quantize_openvino, RECIPES, restamp=restamp_openvino)
