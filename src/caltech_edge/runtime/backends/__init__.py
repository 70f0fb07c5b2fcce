"""Runtime backends behind one registry, picked from the artifact's file name.

``open_runtime("model.onnx")`` -> ONNX Runtime, ``"model.xml"`` -> OpenVINO,
``"model-symbol.json"`` / ``"model-0000.params"`` / a folder holding them -> MXNet,
``".tflite"`` -> LiteRT, ``".pte"`` -> ExecuTorch, ``".mlpackage"`` -> Core ML. Each
backend imports its framework only when opened, so this package imports with numpy and
OpenCV alone (the device Lambda has no torch). Python 3.8-compatible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..._registry import Registry, available
from ...card import ModelCard
from ...errors import BackendError
from ..base import Runtime

BACKENDS = Registry("runtime backend")
# device_requirements: what a device installs for the backend, pinned to the versions
# verified here (read by the device bundles of caltech_edge.export.bundles); raw_call: the
# bare framework call on a prepared input, the reference the benchmarks compare us with.
BACKENDS.register(
    "onnxruntime",
    "caltech_edge.runtime.backends.onnxruntime:OnnxRuntime",
    requires=("onnxruntime",),
    extra="all",
    suffixes=(".onnx",),
    description="ONNX Runtime, CPU execution provider (core dependency)",
    device_requirements=("onnxruntime==1.32.0",),
    raw_call="caltech_edge.runtime.backends.onnxruntime:raw_call",
)
BACKENDS.register(
    "openvino",
    "caltech_edge.runtime.backends.openvino:OpenVinoRuntime",
    requires=("openvino",),
    extra="openvino",
    suffixes=(".xml",),
    description="OpenVINO IR on the CPU; FP32 IR runs bf16 on AMX CPUs unless hinted f32",
    device_requirements=("openvino==2026.4.1",),
)
BACKENDS.register(
    "mxnet",
    "caltech_edge.runtime.backends.mxnet:MxnetRuntime",
    extra="mxnet",
    suffixes=("-symbol.json", ".params"),
    # where mxnet does not import (the core venv), the model runs in the mxnet toolchain
    toolchain="mxnet",
    modules=("mxnet",),
    description="MXNet 1.x Module on symbol/params, as the DeepLens runtime loaded them",
    device_requirements=("mxnet==1.9.1", "numpy<1.24"),
)
# ai_edge_litert or tflite_runtime: either will do, so the backend checks that itself.
BACKENDS.register(
    "litert",
    "caltech_edge.runtime.backends.litert:LiteRtRuntime",
    extra="litert",
    suffixes=(".tflite",),
    description="LiteRT/TFLite Interpreter (XNNPACK; Edge TPU delegate when libedgetpu loads)",
    device_requirements=("ai-edge-litert==2.3.0",),
    raw_call="caltech_edge.runtime.backends.litert:raw_call",
)
BACKENDS.register(
    "executorch",
    "caltech_edge.runtime.backends.executorch:ExecuTorchRuntime",
    requires=("executorch", "torch"),
    extra="executorch",
    suffixes=(".pte",),
    description="ExecuTorch program (.pte, XNNPACK-lowered) via executorch.runtime",
    device_requirements=("executorch==1.5.1", "torch==2.14.1"),
    raw_call="caltech_edge.runtime.backends.executorch:raw_call",
)
BACKENDS.register(
    "coreml",
    "caltech_edge.runtime.backends.coreml:CoreMlRuntime",
    extra="coreml",
    suffixes=(".mlpackage", ".mlmodel"),
    directory_artifact=True,  # an .mlpackage is a folder
    # off macOS the model cannot run: packaging checks its structure (card, spec) instead
    structural_check="caltech_edge.runtime.backends.coreml:coreml_card",
    description="Core ML ML Program (.mlpackage); runs on macOS only",
    device_requirements=("coremltools==9.0", "pillow>=10"),
)


def _by_suffix(name: str) -> Optional[str]:
    for entry in BACKENDS:
        if any(name.endswith(s) for s in entry.info.get("suffixes", ())):
            return entry.name
    return None


def backend_for(path: Union[str, Path]) -> str:
    """The backend name for an artifact path, from its suffix (or folder contents)."""
    path = Path(path)
    by_suffix = _by_suffix(path.name.lower().rstrip("/"))
    if by_suffix is not None and (
        not path.is_dir() or BACKENDS.entry(by_suffix).info.get("directory_artifact")
    ):
        return by_suffix
    if path.is_dir():
        if any(path.glob("*-symbol.json")):
            return "mxnet"
        raise BackendError(
            "{}: a folder is only understood as an MXNet checkpoint (PREFIX-symbol.json + "
            "PREFIX-0000.params); pass the .onnx or .xml file itself otherwise".format(path)
        )
    known = sorted(s for e in BACKENDS for s in e.info.get("suffixes", ()))
    raise BackendError(
        "{}: cannot tell which runtime backend runs this file (known suffixes: {}); "
        "pass backend= one of {}".format(path, ", ".join(known), ", ".join(BACKENDS.names()))
    )


def open_runtime(
    path: Union[str, Path],
    *,
    backend: Optional[str] = None,
    card: Optional[ModelCard] = None,
    precision_hint: Optional[str] = None,
    threads: Optional[int] = None,
) -> Runtime:
    """Load ``path`` with ``backend`` (default: picked from the suffix) -> :class:`Runtime`.

    ``card`` overrides the card the artifact carries; ``precision_hint`` ("f32", "bf16",
    "f16") matters for OpenVINO, where ``None`` means the device default (bf16 on AMX
    CPUs) and "f32" gives FP32 parity; ``threads`` caps intra-op threads.
    """
    path = Path(path)
    if not path.exists():
        raise BackendError("{}: no such model file or folder".format(path))
    name = backend or backend_for(path)
    entry = BACKENDS.entry(name)
    toolchain = entry.info.get("toolchain")
    if toolchain and not all(available(m) for m in entry.info.get("modules", ())):
        from ...toolchains.runtime import ToolchainRuntime

        return ToolchainRuntime(
            toolchain, path, backend=name, card=card, precision_hint=precision_hint, threads=threads
        )
    cls = entry.load()
    return cls(path, card=card, precision_hint=precision_hint, threads=threads)


__all__ = ["BACKENDS", "Runtime", "backend_for", "open_runtime"]
