"""Runtime backends behind one registry, picked from the artifact's file name.

``open_runtime("model.onnx")`` -> ONNX Runtime, ``"model.xml"`` -> OpenVINO,
``"model-symbol.json"`` / ``"model-0000.params"`` / a folder holding them -> MXNet. Each
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
BACKENDS.register(
    "onnxruntime",
    "caltech_edge.runtime.backends.onnxruntime:OnnxRuntime",
    requires=("onnxruntime",),
    extra="all",
    suffixes=(".onnx",),
    description="ONNX Runtime, CPU execution provider (core dependency)",
)
BACKENDS.register(
    "openvino",
    "caltech_edge.runtime.backends.openvino:OpenVinoRuntime",
    requires=("openvino",),
    extra="openvino",
    suffixes=(".xml",),
    description="OpenVINO IR on the CPU; FP32 IR runs bf16 on AMX CPUs unless hinted f32",
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
)


def backend_for(path: Union[str, Path]) -> str:
    """The backend name for an artifact path, from its suffix (or folder contents)."""
    path = Path(path)
    if path.is_dir():
        if any(path.glob("*-symbol.json")):
            return "mxnet"
        raise BackendError(
            "{}: a folder is only understood as an MXNet checkpoint (PREFIX-symbol.json + "
            "PREFIX-0000.params); pass the .onnx or .xml file itself otherwise".format(path)
        )
    name = path.name.lower()
    for entry in BACKENDS:
        if any(name.endswith(s) for s in entry.info.get("suffixes", ())):
            return entry.name
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
