"""Device bundles: ``caltech-edge package EXPORT_DIR --target T --out DIR``.

One registry entry per device. Each names the formats the device takes (in order of
preference: the first one present is the model the start script runs), whether it runs a
service (start script + systemd unit), the Linux groups that service needs and a hook
(``"module:function"``) adding what only that device needs: the Edge TPU compiler command
and report for Coral, the ``trtexec`` command for Jetson, a usage note for Core ML, the
model archive + Lambda zip for DeepLens. Nothing outside this package branches on a
target's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._registry import Registry
from ...card import ModelCard
from ...errors import ExportError

TARGETS = Registry("device target")
TARGETS.register(
    "deeplens",
    "caltech_edge.export.bundles.devices:deeplens",
    formats=("mxnet",),
    service=False,
    own_layout=True,  # the archive DeepLens' console imports, not the generic layout
    description="AWS DeepLens: model.tar.gz (MXNet symbol/params) + Greengrass Lambda zip",
)
TARGETS.register(
    "rpi",
    "caltech_edge.export.bundles.devices:rpi",
    formats=("tflite-int8", "tflite", "onnx-int8", "onnx", "executorch-int8", "executorch"),
    service=True,
    threads=4,
    description="Raspberry Pi 4/5 (64-bit OS): LiteRT first, ONNX Runtime and ExecuTorch too",
)
TARGETS.register(
    "coral",
    "caltech_edge.export.bundles.devices:coral",
    formats=("edgetpu", "tflite-int8"),
    service=True,
    threads=2,
    groups=("video", "plugdev"),
    description="Google Coral (Edge TPU): full-integer TFLite, compiled by edgetpu_compiler",
)
TARGETS.register(
    "jetson",
    "caltech_edge.export.bundles.devices:jetson",
    formats=("onnx-trt-int8", "onnx"),
    service=True,
    threads=4,
    description="NVIDIA Jetson: TensorRT-ready INT8 ONNX (trtexec command) run by ONNX Runtime",
)
TARGETS.register(
    "coreml",
    "caltech_edge.export.bundles.devices:coreml",
    formats=("coreml",),
    service=False,
    description="Apple (Core ML / Neural Engine): the mlpackage and a usage note",
)


def package_target(export_dir: str | Path, *, target: str, out: str | Path) -> dict[str, Any]:
    """Write the ``target`` bundle of ``export_dir`` into ``out``; return what was written."""
    from .build import (
        check_model,
        copy_model,
        copy_runtime,
        find_models,
        manifest,
        requirements,
        write_readme,
        write_service,
    )

    entry = TARGETS.entry(target)
    export_dir, out = Path(export_dir), Path(out)
    if not export_dir.is_dir():
        raise ExportError(f"{export_dir}: not an export directory")
    hook = entry.load()
    if entry.info.get("own_layout"):
        return hook(export_dir, out)
    formats = entry.info["formats"]
    models = find_models(export_dir, formats)
    if not models:
        raise ExportError(
            f"{export_dir}: no model for {target} (it takes {', '.join(formats)}); export one "
            f"first: caltech-edge export RUN --to {formats[-1]} --out {export_dir}"
        )
    card = (
        ModelCard.load(export_dir / "card.json") if (export_dir / "card.json").is_file() else None
    )
    card = card or _card_of(models[0].path)
    for model in models:
        model.check = check_model(model, card)
    out.mkdir(parents=True, exist_ok=True)
    card.save(out / "card.json")
    files = copy_runtime(out)
    for model in models:
        copy_model(model, out)
    reqs = requirements([m.backend for m in models])
    for name, lines in reqs.items():
        (out / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if entry.info.get("service", True):
        write_service(out, target, models[0], entry.info)
    extra = dict(hook(export_dir, out, models, card) or {})
    notes = extra.pop("readme", "")
    write_readme(out, target, entry.info["description"], models, reqs, notes)
    path = manifest(out, target, models, card, {"requirements": reqs, **extra})
    return {
        "bundle": out,
        "manifest": path,
        "models": [m.rel for m in models],
        "runtime_files": len(files),
        **extra,
    }


def _card_of(path: Path) -> ModelCard:
    from ...card import card_for

    return card_for(path)


__all__ = ["TARGETS", "package_target"]
