"""Post-training quantization front door: one registry of INT8 back ends.

``quantize(source, out=DIR, backend=...)`` picks the back end from a registry (no
per-backend if/elif here); each back end is ``fn(src, dst, *, calibration, card, **opts)``,
the producer shape of :data:`caltech_edge.export.formats.FORMATS`, and declares its
ordered recipes in a :class:`~caltech_edge.compress.recipes.QuantizerSpec` (registry
info ``spec=``). With no options the recipes are searched for top-1 agreement with FP32
on held-out calibration images (:func:`~caltech_edge.compress.recipes.search_recipes`);
explicit options run as one ``custom`` recipe, still measured; ``max_drop`` (labels)
runs the back end's own accuracy control once.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .._registry import Registry
from ..card import ModelCard
from ..errors import ConfigError
from ..export.formats import quantizer_rows
from .onnx_int8 import quantize_onnx, quantize_onnx_dynamic
from .openvino_int8 import fp16_ir, quantize_openvino
from .recipes import DEFAULT_HOLDOUT, DEFAULT_TARGET, QuantizerSpec, Recipe, search_recipes

__all__ = [
    "QUANTIZERS",
    "fp16_ir",
    "quantize",
    "quantize_file",
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
    sources=(".onnx",),
    options=("method", "per_channel", "exclude_classifier", "exclude_first", "percentile"),
    spec="caltech_edge.compress.onnx_int8:SPEC",
)
QUANTIZERS.register(
    "openvino",
    "caltech_edge.compress.openvino_int8:quantize_openvino",
    requires=("openvino", "nncf"),
    extra="openvino",
    sources=(".xml", ".onnx"),
    options=(
        "max_drop",
        "validation",
        "subset_size",
        "exclude_classifier",
        "exclude_first",
        "preset",
        "ranges",
        "model_type",
    ),
    spec="caltech_edge.compress.openvino_int8:SPEC",
)


def quantizer_spec(backend: str) -> QuantizerSpec:
    """The :class:`QuantizerSpec` (producer + ordered recipes) of a registered back end."""
    entry = QUANTIZERS.entry(backend)
    entry.load()  # checks the back end's requirements first
    module, _, attr = entry.info["spec"].partition(":")
    return getattr(importlib.import_module(module), attr)


def quantize(
    source: str | Path,
    *,
    out: str | Path,
    backend: str,
    calibration,
    card: ModelCard | None = None,
    target: float = DEFAULT_TARGET,
    holdout: float = DEFAULT_HOLDOUT,
    recipe: str | None = None,
    **options: Any,
) -> Path:
    """INT8 artifact of ``source`` in directory ``out`` (``model.onnx`` or ``model.xml``).

    ``options`` not meaningful for ``backend`` are dropped only when they are ``None`` or
    False; anything else is an error, so a flag is never silently ignored. ``target``:
    top-1 agreement with FP32 the recipe search aims for; ``recipe``: run only that one.
    """
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
    kwargs = {k: v for k, v in options.items() if k in allowed and v not in (None, False)}
    dst = Path(out) / quantizer_rows()[backend].artifact
    if kwargs.get("max_drop") is not None:  # labelled accuracy control: the back end's own
        return entry.load()(src, dst, calibration=calibration, card=card, **kwargs)
    spec = quantizer_spec(backend)
    if recipe is not None and kwargs:
        raise ConfigError("give either recipe= or explicit quantization options, not both")
    chosen = (spec.recipe(recipe),) if recipe else (Recipe("custom", kwargs),) if kwargs else None
    result = search_recipes(
        spec, src, dst, calibration=calibration, card=card, target=target, holdout=holdout,
        recipes=chosen,
    )  # fmt: skip
    return result.artifact


def quantize_file(
    source: str | Path, dst: str | Path, *, backend: str, calibration, **options: Any
) -> Path:
    """:func:`quantize` in the export formats' producer shape (``fn(src, dst, ...)``)."""
    dst = Path(dst)
    expected = quantizer_rows()[backend].artifact
    if dst.name != expected:
        raise ConfigError(f"the {backend} back end writes {expected}, not {dst.name}")
    return quantize(source, out=dst.parent, backend=backend, calibration=calibration, **options)
