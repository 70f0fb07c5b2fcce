"""ONNX Runtime INT8: static QDQ with uint8 activations and per-channel int8 weights.

Why these defaults (measured on this CPU, see docs/compression.md):

* **uint8 activations** (asymmetric) are what ONNX Runtime's x86 int8 kernels (VNNI) run
  fast; signed int8 activations made ResNet-18 *slower* than FP32 here.
* **int8 weights, symmetric, per channel**: per-tensor or uint8 weights (the QOperator /
  QUInt8-weights setting of microsoft/onnxruntime-inference-examples#319) can collapse
  top-1 accuracy because one range must cover every output channel.
* **QDQ format** keeps the graph a plain ONNX graph with QuantizeLinear/DequantizeLinear
  pairs, which ONNX Runtime fuses and other runtimes (OpenVINO) can read.
* ``quant_pre_process`` first (shape inference + graph optimisation), as ONNX Runtime
  recommends, so BatchNorm is folded before ranges are measured.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..card import ModelCard
from ..errors import ConfigError, ExportError
from ._artifact import derived_card, save_onnx_with_card, source_card
from .recipes import QuantizerSpec, Recipe

log = logging.getLogger(__name__)

METHODS = ("minmax", "entropy", "percentile")
TYPES = ("uint8", "int8")
FORMATS = ("qdq", "qoperator")
WEIGHTED_OPS = ("Gemm", "MatMul", "Conv")
PASS_THROUGH = ("Flatten", "Reshape", "Relu", "GlobalAveragePool", "Squeeze", "Identity")


@dataclass(frozen=True)
class OnnxQuantSettings:
    """The knobs of :func:`quantize_onnx`, validated once (also written into the card)."""

    method: str = "minmax"
    per_channel: bool = True
    activation_type: str = "uint8"
    weight_type: str = "int8"
    quant_format: str = "qdq"
    exclude_classifier: bool = False
    exclude_first: bool = False
    percentile: float = 99.999
    activation_symmetric: bool = False
    keep_sensitive: int = 0
    float_logits: bool = False

    def __post_init__(self) -> None:
        for name, value, valid in (
            ("method", self.method, METHODS),
            ("activation_type", self.activation_type, TYPES),
            ("weight_type", self.weight_type, TYPES),
            ("quant_format", self.quant_format, FORMATS),
        ):
            if value not in valid:
                raise ConfigError(f"{name} must be one of {', '.join(valid)}; got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def qdq_options(self) -> dict[str, Any]:
        """The keywords of :func:`qdq_model` these settings stand for (percentile and
        activation symmetry travel in ``quantize_static``'s ``extra_options``)."""
        extra: dict[str, Any] = {
            "ActivationSymmetric": self.activation_symmetric,
            "WeightSymmetric": True,
        }
        if self.method == "percentile":
            extra["CalibPercentile"] = self.percentile
        options = self.to_dict()
        del options["percentile"], options["activation_symmetric"]
        return {**options, "extra": extra}


def classifier_node(model) -> str:
    """Name of the last weighted node (Gemm/MatMul/Conv) feeding the graph output."""
    producers = {out: node for node in model.graph.node for out in node.output}
    name = model.graph.output[0].name
    seen = 0
    while name in producers and seen < 64:
        node = producers[name]
        if node.op_type in WEIGHTED_OPS:
            if not node.name:
                raise ExportError("the classifier node has no name; re-export the ONNX model")
            return node.name
        if node.op_type not in PASS_THROUGH and node.op_type not in ("DequantizeLinear",):
            break
        name, seen = node.input[0], seen + 1
    raise ExportError("could not find the classifier (Gemm/MatMul/Conv) before the output")


def first_conv_node(model) -> str:
    """Name of the first Conv (ONNX graphs are topologically sorted): the stem."""
    for node in model.graph.node:
        if node.op_type == "Conv" and node.name:
            return node.name
    raise ExportError("no named Conv node to keep in float (is this an image classifier?)")


def _preprocess(src: Path, dst: Path) -> None:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    except Exception as exc:  # ORT raises bare exceptions on unsupported graphs
        raise ExportError(f"{src}: quant_pre_process failed ({exc})") from exc


def static_qdq(
    src: Path,
    pre: Path,
    dst: Path,
    calibration,
    *,
    method: str,
    per_channel: bool,
    activation_type: str,
    weight_type: str,
    excluded: list[str],
    extra: dict[str, Any],
    quant_format: str = "qdq",
) -> None:
    """ONNX Runtime's ``quantize_static`` on the pre-processed ``pre``, written to ``dst``.

    The one call behind every ONNX Runtime INT8 row (``onnx-int8`` here and the symmetric
    TensorRT flavour in :mod:`caltech_edge.export.tensorrt`): the calibration reader is
    rewound first and a failure becomes an ExportError naming ``src``.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    cmethod = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    calibration.rewind()
    try:
        quantize_static(
            str(pre),
            str(dst),
            calibration,
            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
            per_channel=per_channel,
            activation_type=qtype[activation_type],
            weight_type=qtype[weight_type],
            calibrate_method=cmethod,
            nodes_to_exclude=excluded,
            extra_options=extra,
            calibration_providers=["CPUExecutionProvider"],
        )
    except Exception as exc:  # ORT raises bare exceptions on unsupported graphs
        raise ExportError(f"{src}: ONNX Runtime static quantization failed ({exc})") from exc


def quantize_onnx(
    onnx_path: str | Path,
    out_path: str | Path,
    *,
    calibration,
    card: ModelCard | None = None,
    method: str = "minmax",
    per_channel: bool = True,
    exclude_classifier: bool = False,
    exclude_first: bool = False,
    percentile: float = 99.999,
    activation_symmetric: bool = False,
    activation_type: str = "uint8",
    weight_type: str = "int8",
    quant_format: str = "qdq",
    keep_sensitive: int = 0,
    float_logits: bool = False,
    **_options: Any,
) -> Path:
    """Static INT8 quantization of ``onnx_path`` into ``out_path`` (+ its card sidecar).

    ``calibration``: a CalibrationDataReader (``caltech_edge.data.calibration``) over
    training images. ``method``: how activation ranges are chosen from the calibration
    data: minmax (fast, default), entropy (KL; note that ``quantize_static`` runs ONNX
    Runtime's entropy calibrater with 128 histogram bins and 128 quantized bins, which
    leaves the KL search almost nothing to choose from: it gave exactly the minmax
    ranges in our measurements), percentile (99.999th percentile; measured best here). ``exclude_classifier`` keeps the final layer in
    FP32 (costs a little speed, sometimes recovers accuracy with few classes);
    ``exclude_first`` does the same for the stem convolution, whose input is the raw
    normalized image. :data:`RECIPES` orders these for the accuracy-aware search.
    ``keep_sensitive``: after quantizing, rank the quantized layers by how much putting
    each one alone back in float brings the logits closer to FP32 on the calibration
    images (no labels; :mod:`~caltech_edge.compress.sensitivity`) and keep that many of
    the worst in float. ``float_logits``: no uint8 rounding after the last reducing node
    (the class scores stay float; :mod:`~caltech_edge.compress.float_logits`). Non-default ``activation_type``/``weight_type``/``quant_format`` exist to reproduce
    the slow and collapsing settings, not for use.
    """

    settings = OnnxQuantSettings(
        method=method,
        per_channel=per_channel,
        activation_type=activation_type,
        weight_type=weight_type,
        quant_format=quant_format,
        exclude_classifier=exclude_classifier,
        exclude_first=exclude_first,
        percentile=float(percentile),
        activation_symmetric=bool(activation_symmetric),
        keep_sensitive=int(keep_sensitive),
        float_logits=bool(float_logits),
    )
    src, out = Path(onnx_path), Path(out_path)
    if not src.is_file():
        raise ExportError(f"{src}: ONNX model not found")
    base = source_card(src, card)
    model, excluded = qdq_model(src, calibration, **settings.qdq_options())
    new_card = derived_card(
        base,
        src,
        precision="int8",
        fmt="onnx",
        quantization={
            "backend": "onnxruntime",
            **settings.to_dict(),
            "excluded_nodes": excluded,
            "calibration_images": len(calibration),
        },
    )
    save_onnx_with_card(model, out, new_card)
    log.info("INT8 ONNX written to %s", out)
    return out


def qdq_model(
    src: Path,
    calibration,
    *,
    method: str,
    per_channel: bool,
    activation_type: str,
    weight_type: str,
    extra: dict[str, Any],
    quant_format: str = "qdq",
    exclude_classifier: bool = False,
    exclude_first: bool = False,
    float_logits: bool = False,
    keep_sensitive: int = 0,
    bias_correction: bool = False,
) -> tuple[Any, list[str]]:
    """(the QDQ model of ``src``, the nodes left in float): ORT's pre-processing,
    :func:`static_qdq` and :func:`refine_qdq` in a scratch folder. The one pipeline of
    every ONNX Runtime INT8 row (uint8 here, symmetric for TensorRT); ``extra`` is
    ``quantize_static``'s ``extra_options``."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="ce-quant-") as tmp:
        pre, q = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        _preprocess(src, pre)
        graph = onnx.load(str(pre))
        excluded = [classifier_node(graph)] if exclude_classifier else []
        excluded += [first_conv_node(graph)] if exclude_first else []
        static_qdq(
            src,
            pre,
            q,
            calibration,
            method=method,
            per_channel=per_channel,
            activation_type=activation_type,
            weight_type=weight_type,
            excluded=excluded,
            extra=extra,
            quant_format=quant_format,
        )
        model, floated = refine_qdq(
            onnx.load(str(q)), graph, calibration, float_logits=float_logits,
            keep_sensitive=keep_sensitive, bias_correction=bias_correction,
        )  # fmt: skip
    return model, excluded + floated


def refine_qdq(
    model,
    fp32,
    calibration,
    *,
    float_logits: bool,
    keep_sensitive: int,
    bias_correction: bool = False,
):
    """The edits every ONNX Runtime QDQ row (uint8 here, symmetric for TensorRT) makes after
    ``quantize_static``: float logits, then the ``keep_sensitive`` most damaging layers back
    in float (``fp32``: the pre-processed float graph), then (``bias_correction``) the
    float biases moved so each layer keeps FP32's mean output
    (:mod:`~caltech_edge.compress.bias_correction`). Returns (model, layers kept float)."""
    from .sensitivity import calibration_images, keep_sensitive_onnx

    if float_logits:
        from .float_logits import onnx_float_logits

        onnx_float_logits(model)
    sensitive: list[str] = []
    if keep_sensitive > 0:
        model, ranking = keep_sensitive_onnx(
            model, fp32, calibration_images(calibration), int(keep_sensitive)
        )
        sensitive = [n for n, gain in ranking[: int(keep_sensitive)] if gain > 0]
        log.info("kept in float (most sensitive): %s", sensitive)
    if bias_correction:
        from .bias_correction import correct_biases

        corrected = correct_biases(
            model, fp32, calibration_images(calibration), exclude=[classifier_node(fp32)]
        )
        log.info("bias-corrected %d layers", len(corrected))
    return model, sensitive


def quantize_onnx_dynamic(
    onnx_path: str | Path, out_path: str | Path, *, card: ModelCard | None = None
) -> Path:
    """Dynamic (weight-only int8, activations quantized on the fly) for MatMul/Gemm.

    This suits transformer/RNN-style models made of MatMuls. For convnets it only touches
    the final fully connected layer (convolutions would become the slow ConvInteger op),
    so it shrinks a ResNet's classifier but gives no speed-up; use static INT8 instead.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, out = Path(onnx_path), Path(out_path)
    base = source_card(src, card)
    with tempfile.TemporaryDirectory(prefix="ce-dyn-") as tmp:
        q = Path(tmp) / "dyn.onnx"
        try:
            quantize_dynamic(
                str(src),
                str(q),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm"],
            )
        except Exception as exc:
            raise ExportError(f"{src}: dynamic quantization failed ({exc})") from exc
        model = onnx.load(str(q))
    new_card = derived_card(
        base, src, precision="int8", fmt="onnx", quantization={"backend": "onnxruntime-dynamic"}
    )
    save_onnx_with_card(model, out, new_card)
    return out


def restamp_onnx(path: Path, card: ModelCard) -> None:
    """Rewrite the card embedded in an ONNX file (and its sidecar) after the recipe search."""
    import onnx

    save_onnx_with_card(onnx.load(str(path)), path, card)


# Best first; the search keeps the first reaching the agreement target. Every recipe keeps
# the logits in float (compress/float_logits.py): rounding the class scores to uint8
# flipped near-tied photos for no speed gain (real SqueezeNet, 533 photos: minmax 97.4% ->
# 98.1% agreement, percentile 97.9% -> 98.1%). Percentile ranges clip the rare activation
# outliers that minmax stretches the uint8 grid over; per-tensor weights can collapse a
# network (one range for all channels) but kept the real SqueezeNet within 0.2 points
# where per-channel lost 1.3 (the search measures which); keeping the stem / classifier in
# float costs a little speed, so those come after, then the three layers a label-free
# sensitivity pass finds most damaging (compress/sensitivity.py); symmetric int8
# activations (the TensorRT layout) run slower on x86 and come last.
_FL = {"float_logits": True}
RECIPES: tuple[Recipe, ...] = (
    Recipe("minmax-float-logits", {"method": "minmax", **_FL}),
    Recipe("percentile-float-logits", {"method": "percentile", "percentile": 99.999, **_FL}),
    Recipe("minmax-per-tensor-float-logits", {"method": "minmax", "per_channel": False, **_FL}),
    Recipe("percentile-99.99-float-logits", {"method": "percentile", "percentile": 99.99, **_FL}),
    Recipe("minmax-classifier-float", {"method": "minmax", "exclude_classifier": True, **_FL}),
    Recipe(
        "minmax-stem-classifier-float",
        {"method": "minmax", "exclude_first": True, "exclude_classifier": True, **_FL},
    ),
    Recipe("minmax-3-sensitive-float", {"method": "minmax", "keep_sensitive": 3, **_FL}),
    Recipe(
        "symmetric-int8-activations",
        {"method": "percentile", "activation_type": "int8", "activation_symmetric": True, **_FL},
    ),
)
SPEC = QuantizerSpec("onnxruntime", quantize_onnx, RECIPES, restamp=restamp_onnx)
