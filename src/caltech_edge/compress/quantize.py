"""Post-training quantization front door: one registry of INT8 back ends.

``quantize(source, out=DIR, backend=...)`` picks the back end from a registry (no
per-backend if/elif here); each back end is ``fn(src, dst, *, calibration, card, **opts)``,
the producer shape of :data:`caltech_edge.export.formats.FORMATS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._registry import Registry
from ..card import ModelCard
from .onnx_int8 import quantize_onnx, quantize_onnx_dynamic
from .openvino_int8 import fp16_ir, quantize_openvino

__all__ = [
    "QUANTIZERS",
    "fp16_ir",
    "quantize",
    "quantize_onnx",
    "quantize_onnx_dynamic",
    "quantize_openvino",
]

QUANTIZERS = Registry("quantization backend")
QUANTIZERS.register(
    "onnxruntime",
    "caltech_edge.compress.onnx_int8:quantize_onnx",
    requires=("onnxruntime", "onnx"),
    extra="torch",
    artifact="model.onnx",
    sources=(".onnx",),
    options=("method", "per_channel", "exclude_classifier"),
)
QUANTIZERS.register(
    "openvino",
    "caltech_edge.compress.openvino_int8:quantize_openvino",
    requires=("openvino", "nncf"),
    extra="openvino",
    artifact="model.xml",
    sources=(".xml", ".onnx"),
    options=("max_drop", "validation", "subset_size", "exclude_classifier", "preset"),
)


def quantize(
    source: str | Path,
    *,
    out: str | Path,
    backend: str,
    calibration,
    card: ModelCard | None = None,
    **options: Any,
) -> Path:
    """INT8 artifact of ``source`` in directory ``out`` (``model.onnx`` or ``model.xml``).

    ``options`` not meaningful for ``backend`` are dropped only when they are ``None`` or
    False; anything else is an error, so a flag is never silently ignored.
    """
    from ..errors import ConfigError

    entry = QUANTIZERS.entry(backend)
    src = Path(source)
    if src.suffix not in entry.info["sources"]:
        raise ConfigError(
            f"{src}: the {backend} back end quantizes {', '.join(entry.info['sources'])} files; "
            "export the model first (caltech-edge export RUN --formats onnx,openvino)"
        )
    allowed = set(entry.info["options"])
    unused = {k: v for k, v in options.items() if k not in allowed and v not in (None, False)}
    if unused:
        raise ConfigError(
            f"option(s) {', '.join(sorted(unused))} do not apply to the {backend} back end "
            f"(it takes {', '.join(sorted(allowed))})"
        )
    kwargs = {k: v for k, v in options.items() if k in allowed and v is not None}
    fn = entry.load()
    return fn(src, Path(out) / entry.info["artifact"], calibration=calibration, card=card, **kwargs)
