"""``compress_report``: every usual variant of a trained run, built and measured.

FP32 (PyTorch eager, ONNX Runtime, OpenVINO f32 and device-default), FP16 IR, INT8
ONNX Runtime, INT8 OpenVINO, structured pruned-x% and pruned + INT8, all judged on the
run's own TEST split (calibration uses its training split), then written by
:func:`caltech_edge.compress.report.write_report`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..card import ModelCard
from ..rundir import RunDir, load_torch_model
from .report import Variant, measure_variants, write_report

log = logging.getLogger(__name__)


def test_images(run: RunDir, data: str | Path, *, limit: int | None = 200, seed: int = 0):
    """(NCHW, labels in the card's index space) for up to ``limit`` test images of ``run``."""
    from ..data.calibration import stratified_sample
    from ..data.datasets import open_dataset
    from ..data.loader import iter_batches
    from ..data.splits import Split, make_split
    from ..errors import DatasetError

    card = run.load_card()
    ds = open_dataset(data)
    split = Split.load(run.split, dataset=ds) if run.split.is_file() else make_split(ds, seed=seed)
    index = {name: i for i, name in enumerate(card.class_names)}
    mapping = np.asarray([index.get(c, -1) for c in ds.classes])
    if (mapping < 0).all():
        raise DatasetError(f"{data}: none of its classes are classes of the model in {run.root}")
    targets = list(ds.targets)
    test = [i for i in split.test if mapping[targets[i]] >= 0]
    chosen = stratified_sample(targets, test, limit or len(test), seed=seed)
    xs, ys = [], []
    for x, y in iter_batches(ds, chosen, card.preprocess, batch_size=32):
        xs.append(x)
        ys.append(mapping[y])
    return np.concatenate(xs), np.concatenate(ys)


def recipe_note(artifact: Path) -> str:
    """The INT8 recipe the search kept and its held-out agreement, from the artifact's card."""
    from ._artifact import source_card

    quant = source_card(artifact).extra.get("quantization") or {}
    if "recipe" not in quant:
        return ""
    return (
        f"recipe `{quant['recipe']}`, top-1 agreement with FP32 {100 * quant['agreement']:.1f}% "
        f"on {quant['agreement_images']} held-out calibration images"
    )


def _family(
    model: Any, card: ModelCard, out: Path, prefix: str, tag: str, calib: Any
) -> list[Variant]:
    """One model's variants: eager, ONNX Runtime and OpenVINO FP32, and both INT8 files
    (each by its accuracy-aware recipe search on held-out calibration images)."""
    from ..export.onnx import export_onnx
    from ..export.openvino import onnx_to_openvino
    from .prune import count_macs, count_parameters
    from .quantize import quantize_file

    onnx_path = export_onnx(model, card, out / prefix / "onnx" / "model.onnx")
    xml = onnx_to_openvino(onnx_path, out / prefix / "openvino" / "model.xml", card=card)
    ort8 = quantize_file(
        onnx_path, out / prefix / "onnx-int8" / "model.onnx", backend="onnxruntime",
        calibration=calib, card=card,
    )  # fmt: skip
    ov8 = quantize_file(
        xml, out / prefix / "openvino-int8" / "model.xml", backend="openvino",
        calibration=calib, card=card,
    )  # fmt: skip
    common = {
        "params": count_parameters(model),
        "macs": count_macs(model, card.preprocess.image_size),
    }
    return [
        Variant(f"{tag}FP32 torch eager", model=model, **common),
        Variant(f"{tag}FP32 ONNX Runtime", artifact=onnx_path, **common),
        Variant(f"{tag}FP32 OpenVINO (f32 hint)", artifact=xml, precision_hint="f32", **common),
        Variant(
            f"{tag}OpenVINO default precision (bf16 if the CPU has it)", artifact=xml, **common
        ),
        Variant(
            f"{tag}INT8 ONNX Runtime",
            artifact=ort8,
            precision="int8",
            note=recipe_note(ort8),
            **common,
        ),
        Variant(
            f"{tag}INT8 OpenVINO", artifact=ov8, precision="int8", note=recipe_note(ov8), **common
        ),
    ]


def compress_report(
    run: str | Path | RunDir,
    *,
    data: str | Path,
    out: str | Path,
    prune_amount: float = 0.5,
    finetune_epochs: int = 0,
    calib_size: int = 300,
    test_limit: int | None = 200,
    repeats: int = 30,
    include_pruned: bool = True,
) -> dict[str, Any]:
    """Build all variants of ``run`` under ``out`` and write the report there."""
    from ..data.calibration import CalibrationReader
    from ..export.openvino import onnx_to_openvino
    from .prune import count_macs, count_parameters
    from .prune_run import prune_run

    run = run if isinstance(run, RunDir) else RunDir(run)
    out = Path(out)
    model, card = load_torch_model(run)
    images, labels = test_images(run, data, limit=test_limit)
    calib = CalibrationReader.from_dataset(
        data,
        spec=card.preprocess,
        calib_size=calib_size,
        split=run.split if run.split.is_file() else None,
    )
    variants = _family(model, card, out, "fp32", "", calib)
    fp16 = onnx_to_openvino(
        out / "fp32" / "onnx" / "model.onnx", out / "fp32" / "openvino-fp16" / "model.xml",
        card=card, fp16=True,
    )  # fmt: skip
    params, macs = count_parameters(model), count_macs(model, card.preprocess.image_size)
    variants.insert(4, Variant("FP16 IR OpenVINO (f32 hint)", artifact=fp16, precision="fp16",
                               precision_hint="f32", params=params, macs=macs))  # fmt: skip
    info: dict[str, Any] = {
        "run": str(run.root),
        "data": str(data),
        "calibration_images": len(calib),
    }
    if include_pruned:
        pruned_run = prune_run(
            run,
            out=out / "pruned-run",
            amount=prune_amount,
            structured=True,
            finetune_epochs=finetune_epochs,
            data=data if finetune_epochs else None,
            progress=False,
        )
        pmodel, pcard = load_torch_model(pruned_run)
        tag = f"pruned-{round(prune_amount * 100)}% "
        pv = _family(pmodel, pcard, out, "pruned", tag, calib)
        variants += [v for v in pv if "eager" not in v.name and "default" not in v.name]
        info["pruned"] = {"amount": prune_amount, "finetune_epochs": finetune_epochs}
    rows = measure_variants(variants, images=images, labels=labels, repeats=repeats)
    paths = write_report(rows, out, title=f"Compression report: {card.name}", info=info)
    return {"rows": rows, **{k: str(v) for k, v in paths.items()}}
