"""Parts 2 and 3 of ``bench_compress.py`` and the helpers all three parts share.

2. accuracy: the real SqueezeNet 1.1 FP32 vs INT8 (ONNX Runtime, OpenVINO) on the real
   Caltech-256 sample.
3. pruning: SqueezeNet fine-tuned on the sample, structured pruning, pruned + INT8.

Part 1 (speed) stays in ``bench_compress.py``: it re-runs that script as its ISA-limited
child. Not a script of its own; ``bench_compress.py`` imports it from its own folder.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def _threads() -> None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)


def _runtime(path, hint=None):
    from caltech_edge.runtime.backends import open_runtime

    return open_runtime(path, precision_hint=hint)


def _real_calibration(data: Path, spec, n: int, split=None):
    from caltech_edge.data.calibration import CalibrationReader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CalibrationReader.from_dataset(
            data / "caltech256-sample", spec=spec, calib_size=n, split=split
        )


# -- part 2 ----------------------------------------------------------------------------
def _squeezenet_card_and_model(data: Path):
    import torch
    import torchvision

    from caltech_edge.card import ModelCard, read_class_names
    from caltech_edge.data.transforms import PreprocessSpec

    weights = data / "weights" / "squeezenet1_1_caltech256.pth"
    names = read_class_names(data / "weights" / "squeezenet1_1_caltech256_idx_to_class.txt")
    model = torchvision.models.squeezenet1_1(num_classes=len(names))
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    card = ModelCard(
        arch="squeezenet1_1",
        class_names=names,
        preprocess=PreprocessSpec(224),
        dataset="caltech256",
    )
    return model.eval(), card


def _logits(rt, images):
    return np.concatenate([rt.infer(images[i : i + 1]) for i in range(len(images))])


def _remap(batches, mapping):
    """Dataset labels -> the model's class indices (256-class head, 5-class sample)."""
    return [(x, mapping[y]) for x, y in batches]


def _test_split_images(
    ds: Any, indices: Any, spec: Any, mapping: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The test split preprocessed once, labels in the model's class space, so every
    variant is scored on identical inputs."""
    from caltech_edge.data.loader import iter_batches

    xs, ys = [], []
    for x, y in iter_batches(ds, indices, spec, batch_size=32):
        xs.append(x)
        ys.append(mapping[y])
    return np.concatenate(xs), np.concatenate(ys)


def _onnx_int8_variants(
    onnx_path: Path, calib: Any, work: Path
) -> dict[str, tuple[Path, str | None]]:
    """The ONNX Runtime INT8 settings compared: QDQ per calibration method, the collapsing
    QOperator/uint8-weight setting of #319, and percentile with the classifier in float."""
    from caltech_edge.compress.onnx_int8 import quantize_onnx

    variants: dict[str, tuple[Path, str | None]] = {}
    for method in ("minmax", "entropy", "percentile"):
        p = quantize_onnx(
            onnx_path, work / f"sq-{method}" / "model.onnx", calibration=calib, method=method
        )
        variants[f"ONNX Runtime INT8 QDQ {method}"] = (p, None)
    bad = quantize_onnx(
        onnx_path,
        work / "sq-bad" / "model.onnx",
        calibration=calib,
        quant_format="qoperator",
        weight_type="uint8",
        per_channel=False,
    )
    variants["ONNX Runtime INT8 QOperator uint8 weights per-tensor (#319)"] = (bad, None)
    p = quantize_onnx(
        onnx_path,
        work / "sq-pex" / "model.onnx",
        calibration=calib,
        method="percentile",
        exclude_classifier=True,
    )
    variants["ONNX Runtime INT8 QDQ percentile, classifier in float"] = (p, None)
    return variants


def _score_variants(
    variants: dict[str, tuple[Path, str | None]], images: np.ndarray, labels: np.ndarray
) -> list[dict]:
    """Top-1, agreement with the first variant (the FP32 reference) and on-disk size per
    variant; an OpenVINO IR's size includes its ``.bin`` weights."""
    rows = []
    ref = None
    for name, (path, hint) in variants.items():
        logits = _logits(_runtime(path, hint), images)
        if ref is None:
            ref = logits
        rows.append(
            {
                "variant": name,
                "top1": float((logits.argmax(1) == labels).mean()),
                "agreement_with_fp32": float((logits.argmax(1) == ref.argmax(1)).mean()),
                "size_mb": (
                    path.stat().st_size
                    + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)
                )
                / 1e6,
            }
        )
    return rows


def accuracy(args: argparse.Namespace, work: Path) -> dict:
    from caltech_edge.compress.openvino_int8 import quantize_openvino
    from caltech_edge.data.calibration import CalibrationReader, validation_batches
    from caltech_edge.data.datasets import open_dataset
    from caltech_edge.data.splits import make_split
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.export.openvino import onnx_to_openvino

    model, card = _squeezenet_card_and_model(args.data)
    root = args.data / "caltech256-sample"
    ds = open_dataset(root)
    split = make_split(ds, train_per_class=30, val_per_class=10, seed=0)
    split.save(work / "sq-split.json")
    index = {n: i for i, n in enumerate(card.class_names)}
    mapping = np.asarray([index[c] for c in ds.classes])
    images, labels = _test_split_images(ds, split.test, card.preprocess, mapping)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 150 images of 5 classes: only 5 of 256 classes
        calib = CalibrationReader.from_dataset(
            root, spec=card.preprocess, calib_size=150, split=work / "sq-split.json"
        )
    onnx_path = export_onnx(model, card, work / "sq" / "model.onnx")
    xml = onnx_to_openvino(onnx_path, work / "sq" / "model.xml", card=card)
    variants: dict[str, tuple[Path, str | None]] = {
        "ONNX Runtime FP32": (onnx_path, None),
        "OpenVINO FP32 (f32 hint)": (xml, "f32"),
    }
    variants.update(_onnx_int8_variants(onnx_path, calib, work))
    ov8 = quantize_openvino(xml, work / "sq-ov8" / "model.xml", calibration=calib)
    variants["OpenVINO INT8 (NNCF)"] = (ov8, None)
    p = quantize_openvino(
        xml, work / "sq-ov8x" / "model.xml", calibration=calib, exclude_classifier=True
    )
    variants["OpenVINO INT8 (NNCF), classifier in float"] = (p, None)
    val = validation_batches(root, spec=card.preprocess, split=work / "sq-split.json", size=50)
    p = quantize_openvino(
        xml,
        work / "sq-ov8ac" / "model.xml",
        calibration=calib,
        max_drop=0.005,
        validation=_remap(val, mapping),
    )
    variants["OpenVINO INT8 (NNCF) accuracy control, max drop 0.5 pt on val"] = (p, None)
    _threads()
    rows = _score_variants(variants, images, labels)
    return {
        "test_images": len(images),
        "calibration_images": len(calib),
        "validation_images": sum(len(y) for _, y in val),
        "rows": rows,
    }


# -- part 3 ----------------------------------------------------------------------------
def _pruning_config(args: argparse.Namespace, root: Path) -> Any:
    """The base run's training config: the real SqueezeNet weights fine-tuned on the sample,
    so pruning starts from a model that is accurate on these 5 classes."""
    from caltech_edge.config import TrainConfig

    return TrainConfig(
        arch="squeezenet1_1",
        weights=str(args.data / "weights" / "squeezenet1_1_caltech256.pth"),
        image_size=224,
        epochs=args.epochs,
        batch_size=32,
        learning_rate=0.001,
        train_per_class=args.train_per_class,
        strategy="full",
        seed=0,
    )


def _pruned_variants(
    args: argparse.Namespace, base: Any, root: Path, calib: Any, work: Path, amount: float
) -> tuple[list[Any], dict]:
    """Prune ``base`` by ``amount`` (with fine-tuning) and return its FP32 ONNX and INT8
    OpenVINO variants plus the run's ``prune.json``; one call per amount keeps the loop short."""
    from caltech_edge.compress.openvino_int8 import quantize_openvino
    from caltech_edge.compress.prune import count_macs, count_parameters
    from caltech_edge.compress.prune_run import prune_run
    from caltech_edge.compress.report import Variant
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.export.openvino import onnx_to_openvino
    from caltech_edge.rundir import load_torch_model

    pr = prune_run(
        base,
        out=work / f"sq-pruned-{amount}",
        amount=amount,
        structured=True,
        steps=args.prune_steps,
        finetune_epochs=args.epochs,
        data=root,
        learning_rate=args.prune_lr,
        progress=False,
    )
    m, c = load_torch_model(pr)
    p, mac = count_parameters(m), count_macs(m, 224)
    onnx_path = export_onnx(m, c, work / f"p{amount}" / "model.onnx")
    xml = onnx_to_openvino(onnx_path, work / f"p{amount}" / "model.xml", card=c)
    ov8 = quantize_openvino(xml, work / f"p{amount}-int8" / "model.xml", calibration=calib)
    tagp = f"pruned-{round(amount * 100)}%"
    variants = [
        Variant(f"{tagp} ONNX Runtime", artifact=onnx_path, params=p, macs=mac),
        Variant(f"{tagp} + INT8 OpenVINO", artifact=ov8, precision="int8", params=p, macs=mac),
    ]
    return variants, json.loads((pr.root / "prune.json").read_text())


def _fine_tuned_int8(base: Any, calib: Any, work: Path) -> Any:
    """The unpruned fine-tuned model as INT8 OpenVINO, from the ONNX already in ``p0``, so
    pruned + INT8 can be told apart from INT8 alone."""
    from caltech_edge.compress.openvino_int8 import quantize_openvino
    from caltech_edge.compress.prune import count_macs, count_parameters
    from caltech_edge.compress.report import Variant
    from caltech_edge.export.openvino import onnx_to_openvino
    from caltech_edge.rundir import load_torch_model

    m, c = load_torch_model(base)
    onnx_path = work / "p0" / "model.onnx"
    xml = onnx_to_openvino(onnx_path, work / "p0" / "model.xml", card=c)
    ov8 = quantize_openvino(xml, work / "p0-int8" / "model.xml", calibration=calib)
    return Variant(
        "fine-tuned INT8 OpenVINO",
        artifact=ov8,
        precision="int8",
        params=count_parameters(m),
        macs=count_macs(m, 224),
    )


def pruning(args: argparse.Namespace, work: Path) -> dict:
    from caltech_edge.compress.pipeline import test_images
    from caltech_edge.compress.prune import count_macs, count_parameters
    from caltech_edge.compress.report import Variant, measure_variants, write_report
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.rundir import load_torch_model
    from caltech_edge.train import train

    root = args.data / "caltech256-sample"
    base = train(_pruning_config(args, root), data=root, out=work / "sq-run", progress=False)
    _threads()
    results = {}
    variants = []
    images, labels = test_images(base, root, limit=None)
    calib = _real_calibration(args.data, base.load_card().preprocess, 150, split=base.split)
    for tag, run in [("fine-tuned FP32", base)]:
        m, c = load_torch_model(run)
        onnx_path = export_onnx(m, c, work / "p0" / "model.onnx")
        variants.append(
            Variant(
                f"{tag} ONNX Runtime",
                artifact=onnx_path,
                params=count_parameters(m),
                macs=count_macs(m, 224),
            )
        )
    for amount in args.prune_amounts:
        pruned, prune_info = _pruned_variants(args, base, root, calib, work, amount)
        variants += pruned
        results[str(amount)] = prune_info
    variants.insert(1, _fine_tuned_int8(base, calib, work))
    rows = measure_variants(
        variants, images=images, labels=labels, repeats=args.iters, rounds=args.rounds
    )
    paths = write_report(
        rows, args.out, title="SqueezeNet 1.1 on the Caltech-256 sample", info={"prune": results}
    )
    return {"rows": rows, "prune": results, "report": {k: str(v) for k, v in paths.items()}}
