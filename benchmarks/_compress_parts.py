"""Parts 2 and 3 of ``bench_compress.py`` and the helpers all three parts share.

2. accuracy: the real SqueezeNet 1.1 FP32 vs INT8 (ONNX Runtime, OpenVINO) on the real
   Caltech-256 sample.
3. pruning: SqueezeNet fine-tuned on the sample, structured pruning, pruned + INT8.

Part 1 (speed) stays in ``bench_compress.py``: it re-runs that script as its ISA-limited
child. Not a script of its own; ``bench_compress.py`` imports it from its own folder.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

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


def accuracy(args, work: Path) -> dict:
    from caltech_edge.compress.onnx_int8 import quantize_onnx
    from caltech_edge.compress.openvino_int8 import quantize_openvino
    from caltech_edge.data.calibration import CalibrationReader, validation_batches
    from caltech_edge.data.datasets import open_dataset
    from caltech_edge.data.loader import iter_batches
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
    xs, ys = [], []
    for x, y in iter_batches(ds, split.test, card.preprocess, batch_size=32):
        xs.append(x)
        ys.append(mapping[y])
    images, labels = np.concatenate(xs), np.concatenate(ys)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 150 images of 5 classes: only 5 of 256 classes
        calib = CalibrationReader.from_dataset(
            root, spec=card.preprocess, calib_size=150, split=work / "sq-split.json"
        )
    onnx_path = export_onnx(model, card, work / "sq" / "model.onnx")
    xml = onnx_to_openvino(onnx_path, work / "sq" / "model.xml", card=card)
    variants = {
        "ONNX Runtime FP32": (onnx_path, None),
        "OpenVINO FP32 (f32 hint)": (xml, "f32"),
    }
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
    return {
        "test_images": len(images),
        "calibration_images": len(calib),
        "validation_images": sum(len(y) for _, y in val),
        "rows": rows,
    }


# -- part 3 ----------------------------------------------------------------------------
def pruning(args, work: Path) -> dict:
    from caltech_edge.compress.openvino_int8 import quantize_openvino
    from caltech_edge.compress.pipeline import test_images
    from caltech_edge.compress.prune import count_macs, count_parameters
    from caltech_edge.compress.prune_run import prune_run
    from caltech_edge.compress.report import Variant, measure_variants, write_report
    from caltech_edge.config import TrainConfig
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.export.openvino import onnx_to_openvino
    from caltech_edge.rundir import load_torch_model
    from caltech_edge.train import train

    root = args.data / "caltech256-sample"
    config = TrainConfig(
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
    base = train(config, data=root, out=work / "sq-run", progress=False)
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
        variants += [
            Variant(f"{tagp} ONNX Runtime", artifact=onnx_path, params=p, macs=mac),
            Variant(f"{tagp} + INT8 OpenVINO", artifact=ov8, precision="int8", params=p, macs=mac),
        ]
        results[str(amount)] = json.loads((pr.root / "prune.json").read_text())
    m, c = load_torch_model(base)
    onnx_path = work / "p0" / "model.onnx"
    xml = onnx_to_openvino(onnx_path, work / "p0" / "model.xml", card=c)
    ov8 = quantize_openvino(xml, work / "p0-int8" / "model.xml", calibration=calib)
    variants.insert(
        1,
        Variant(
            "fine-tuned INT8 OpenVINO",
            artifact=ov8,
            precision="int8",
            params=count_parameters(m),
            macs=count_macs(m, 224),
        ),
    )
    rows = measure_variants(
        variants, images=images, labels=labels, repeats=args.iters, rounds=args.rounds
    )
    paths = write_report(
        rows, args.out, title="SqueezeNet 1.1 on the Caltech-256 sample", info={"prune": results}
    )
    return {"rows": rows, "prune": results, "report": {k: str(v) for k, v in paths.items()}}
