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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnknownNameError


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

    @property
    def suffix(self) -> str:
        """The artifact's distinguishing suffix (``.onnx``, ``.xml``, ``-symbol.json``)."""
        return (
            "-symbol.json"
            if self.artifact.endswith("-symbol.json")
            else "." + (self.artifact.rsplit(".", 1)[-1])
        )

    def load_producer(self) -> Callable[..., Any]:
        module, _, attr = self.producer.partition(":")
        return getattr(importlib.import_module(module), attr)


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
)

FORMATS: dict[str, ExportFormat] = {row.name: row for row in _ROWS}
DEFAULT_FORMATS: tuple[str, ...] = ("onnx", "mxnet", "openvino", "openvino-fp16")


def get_format(name: str) -> ExportFormat:
    """The row called ``name``; an unknown name lists the valid ones and a close match."""
    try:
        return FORMATS[name]
    except KeyError:
        raise UnknownNameError("export format", name, FORMATS) from None


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
