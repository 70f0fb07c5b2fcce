"""One declarative table of export formats.

Every place that needs to know the formats reads :data:`FORMATS`: the CLI (choices and
help), validation (unknown names get a did-you-mean error), the export pipeline (what to
run, from what), verification (which tolerance applies) and the tests and benchmarks
(parametrized over the rows). Adding a format is adding a row plus its producer.

Producers are ``"module:function"`` strings, imported only when a row is used:

* ``made_from == "model"``: ``producer(model, card, path, **options)`` (a torch module);
* otherwise: ``producer(src_path, dst_path, *, card, **options)`` where ``src_path`` is
  the artifact of the ``made_from`` row; INT8 rows also get ``calibration=`` (a reader
  over training images) and are implemented by the compression stage.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from .._registry import Registry
from ..errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class ExportFormat:
    name: str
    artifact: str  # file name written inside OUT/<name>/
    producer: str  # "module:function"
    backend: str  # runtime backend that executes it (caltech_edge.runtime.backends)
    precision: str  # fp32 | fp16 | int8: decides the verification tolerance
    extra: str  # pip extra providing the producer's dependencies
    description: str
    made_from: str = "model"  # "model" or the name of the row it is converted from
    options: dict[str, Any] = field(default_factory=dict)
    needs_calibration: bool = False
    # Named isolated environment (caltech_edge.toolchains) the producer runs in; "" = the core.
    toolchain: str = ""
    # "module:function" checking an artifact that cannot run here (Core ML off macOS, an
    # Edge TPU compile); "" = numeric verification through the row's runtime backend.
    verifier: str = ""

    @property
    def suffix(self) -> str:
        """The artifact's distinguishing suffix (``.onnx``, ``.xml``, ``-symbol.json``)."""
        return (
            "-symbol.json"
            if self.artifact.endswith("-symbol.json")
            else "." + (self.artifact.rsplit(".", 1)[-1])
        )

    def load_producer(self) -> Callable[..., Any]:
        producer: Callable[..., Any] = FORMAT_REGISTRY.get(self.name)
        return producer

    def with_options(self, overrides: Mapping[str, Any]) -> ExportFormat:
        """This row with ``overrides`` merged over its options (``--option NAME.KEY=VALUE``).

        Each key must be a keyword parameter of the row's producer: a typo fails here, with
        the accepted names, not deep inside a converter after minutes of calibration.
        """
        if not overrides:
            return self
        fixed = ("model", "card", "path", "src", "dst", "calibration", "opset", "dynamic_batch")
        accepted, passes_on = keyword_options(self.load_producer(), exclude=fixed)
        unknown = sorted(set(overrides) - set(accepted))
        if unknown and not passes_on:  # a producer taking **options checks them itself
            raise ConfigError(
                f"--option {self.name}.{unknown[0]}: {self.name} has no option {unknown[0]!r}; "
                f"it takes: {', '.join(accepted) or 'none'}"
            )
        return replace(self, options={**self.options, **overrides})

    def load_verifier(self) -> Callable[..., Any] | None:
        """The row's own verifier, or ``None`` for the numeric check of ``export.verify``."""
        if not self.verifier:
            return None
        module, _, attr = self.verifier.partition(":")
        return getattr(importlib.import_module(module), attr)


def keyword_options(
    fn: Callable[..., Any], *, exclude: Iterable[str] = ()
) -> tuple[list[str], bool]:
    """``fn``'s keyword-only parameter names (sorted, less ``exclude``) and whether it also
    takes ``**kwargs``: what ``--option`` and explicit recipe settings are checked against."""
    import inspect

    params = inspect.signature(fn).parameters.values()
    names = sorted(p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in exclude)
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


_ROWS = (
    ExportFormat(
        name="onnx",
        artifact="model.onnx",
        producer="caltech_edge.export.onnx:export_onnx",
        backend="onnxruntime",
        precision="fp32",
        extra="torch",
        description="ONNX (opset 13 default), input 'data'; card in metadata_props",
    ),
    ExportFormat(
        name="mxnet",
        artifact="model-symbol.json",
        producer="caltech_edge.export.mxnet:onnx_to_mxnet",
        backend="mxnet",
        precision="fp32",
        extra="mxnet",
        toolchain="mxnet",
        description="MXNet model-symbol.json + model-0000.params for mx.mod.Module (DeepLens)",
        made_from="onnx",
    ),
    ExportFormat(
        name="openvino",
        artifact="model.xml",
        producer="caltech_edge.export.openvino:onnx_to_openvino",
        backend="openvino",
        precision="fp32",
        extra="openvino",
        description="OpenVINO IR .xml/.bin, FP32 weights; card in rt_info",
        made_from="onnx",
        options={"fp16": False},
    ),
    ExportFormat(
        name="openvino-fp16",
        artifact="model.xml",
        producer="caltech_edge.export.openvino:onnx_to_openvino",
        backend="openvino",
        precision="fp16",
        extra="openvino",
        description="OpenVINO IR with FP16 weights (what DeepLens' GPU ran)",
        made_from="onnx",
        options={"fp16": True},
    ),
    ExportFormat(
        name="onnx-int8",
        artifact="model.onnx",
        producer="caltech_edge.compress.quantize:quantize_file",
        backend="onnxruntime",
        precision="int8",
        extra="torch",
        description="ONNX static QDQ INT8 (uint8 activations), from caltech-edge quantize",
        made_from="onnx",
        needs_calibration=True,
        options={"backend": "onnxruntime"},  # accuracy-aware recipe search
    ),
    ExportFormat(
        name="openvino-int8",
        artifact="model.xml",
        producer="caltech_edge.compress.quantize:quantize_file",
        backend="openvino",
        precision="int8",
        extra="openvino",
        description="OpenVINO IR INT8 by NNCF post-training quantization",
        made_from="openvino",
        needs_calibration=True,
        options={"backend": "openvino"},  # accuracy-aware recipe search
    ),
    ExportFormat(
        name="tflite",
        artifact="model.tflite",
        producer="caltech_edge.export.tflite:export_tflite",
        backend="litert",
        precision="fp32",
        extra="litert",
        description="LiteRT/TFLite FP32, NHWC input; card + labels in flatbuffer metadata",
    ),
    ExportFormat(
        name="tflite-fp16",
        artifact="model.tflite",
        producer="caltech_edge.export.tflite:export_tflite",
        backend="litert",
        precision="fp16",
        extra="litert",
        description="LiteRT/TFLite with FP16 weights (half size; FP16 on GPU delegates)",
        options={"fp16": True},
    ),
    ExportFormat(
        name="tflite-int8",
        artifact="model.tflite",
        producer="caltech_edge.export.tflite:export_tflite_int8",
        backend="litert",
        precision="int8",
        extra="litert",
        description="LiteRT full-integer INT8 (int8 I/O) by PT2E; Edge TPU op report beside",
        needs_calibration=True,
        options={"target": 0.98},  # the INT8 agreement target
    ),
    ExportFormat(
        name="edgetpu",
        artifact="model_edgetpu.tflite",
        producer="caltech_edge.export.edgetpu:compile_edgetpu",
        backend="litert",
        precision="int8",
        extra="litert",
        description="Coral: edgetpu_compiler on tflite-int8 when on PATH, else the command",
        made_from="tflite-int8",
        verifier="caltech_edge.export.verify_devices:verify_edgetpu",
    ),
    ExportFormat(
        name="executorch",
        artifact="model.pte",
        producer="caltech_edge.export.executorch:export_executorch",
        backend="executorch",
        precision="fp32",
        extra="executorch",
        description="ExecuTorch .pte lowered to XNNPACK (Arm CPUs: Raspberry Pi, phones)",
    ),
    ExportFormat(
        name="executorch-int8",
        artifact="model.pte",
        producer="caltech_edge.export.executorch:export_executorch_int8",
        backend="executorch",
        precision="int8",
        extra="executorch",
        description="ExecuTorch .pte INT8 by PT2E with the XNNPACK quantizer",
        needs_calibration=True,
        options={"target": 0.98},  # the INT8 agreement target
    ),
    ExportFormat(
        name="coreml",
        artifact="model.mlpackage",
        producer="caltech_edge.export.coreml:export_coreml",
        backend="coreml",
        precision="fp16",
        extra="coreml",
        description="Core ML ML Program: image input with the card's preprocessing, labels",
        verifier="caltech_edge.export.verify_devices:verify_coreml",
    ),
    ExportFormat(
        name="onnx-trt-int8",
        artifact="model.onnx",
        producer="caltech_edge.export.tensorrt:export_trt_int8",
        backend="onnxruntime",
        precision="int8",
        extra="torch",
        description="QDQ INT8 ONNX for TensorRT (symmetric); carries the trtexec command",
        made_from="onnx",
        needs_calibration=True,
        options={"target": 0.98},  # the INT8 agreement target
    ),
)

# The format axis sits on the same lazy Registry as the other axes (framework, backend,
# quantizer, toolchain): unknown names get its did-you-mean error, and each entry's target is
# the row's producer, imported only when the row is used. FORMATS is the read-only
# name -> row view that the pipeline, CLI, tests and benchmarks read.
FORMAT_REGISTRY = Registry("export format")
for _row in _ROWS:
    FORMAT_REGISTRY.register(
        _row.name, _row.producer, extra=_row.extra, toolchain=_row.toolchain, row=_row
    )
FORMATS: Mapping[str, ExportFormat] = MappingProxyType(
    {entry.name: entry.info["row"] for entry in FORMAT_REGISTRY}
)
DEFAULT_FORMATS: tuple[str, ...] = ("onnx", "mxnet", "openvino", "openvino-fp16")


def get_format(name: str) -> ExportFormat:
    """The row called ``name``; an unknown name lists the valid ones and a close match."""
    row: ExportFormat = FORMAT_REGISTRY.entry(name).info["row"]
    return row


def quantizer_rows() -> dict[str, ExportFormat]:
    """The INT8 row each ``caltech-edge quantize`` back end produces, by back-end name.

    The rows made by the quantization front door name their back end in
    ``options["backend"]``; the quantizer registry and the quantize CLI derive their
    artifact names, source formats and choices from here instead of repeating them.
    """
    return {
        row.options["backend"]: row
        for row in FORMATS.values()
        if row.needs_calibration and "backend" in row.options
    }


def parse_formats(names: str | Iterable[str]) -> tuple[ExportFormat, ...]:
    """``"onnx,openvino"`` or a list -> rows in dependency order (sources first), deduplicated."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    wanted = [get_format(n) for n in names if n]
    if not wanted:
        raise UnknownNameError("export format", "", FORMATS)
    unique = {f.name: f for f in wanted}
    return tuple(FORMATS[n] for n in FORMATS if n in unique)


def formats_help() -> str:
    """One line per format, for ``--help``."""
    return "\n".join(
        f"  {f.name:<14} {f.precision:<5} {f.backend:<12} {f.description}" for f in FORMATS.values()
    )
