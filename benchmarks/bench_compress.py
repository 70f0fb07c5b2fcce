"""Compression, measured: INT8/FP16 speed, INT8 accuracy on real images, structured pruning.

Three parts, each in one process so ratios compare numbers measured side by side:

1. speed: ResNet-18 at 224, batch 1: PyTorch eager FP32, ONNX Runtime FP32, ONNX Runtime
   INT8 (uint8 activations, our default; and signed int8 activations for contrast),
   OpenVINO FP32 (f32 hint and device default), OpenVINO INT8 (NNCF). Variants are timed
   round-robin over ``--rounds`` rounds (the 2-core machine is shared; the best round's
   median is kept). Then OpenVINO INT8/FP32 again in subprocesses with
   ``ONEDNN_MAX_CPU_ISA=AVX2`` and ``AVX512_CORE`` (edge CPUs lack AMX).
   ResNet ImageNet weights cannot be had here, so this model has random weights with
   BatchNorm statistics re-estimated on real images (speed does not depend on the values).
2. accuracy: the real SqueezeNet 1.1 (ImageNet features + Caltech-256 head) on the real
   Caltech-256 sample: FP32 vs INT8 top-1 on a held-out test split (calibration on the
   training split), ONNX Runtime and OpenVINO, plus the collapsing QOperator/uint8-weight
   setting of microsoft/onnxruntime-inference-examples#319.
3. pruning: SqueezeNet features fine-tuned on the sample (5 classes, the trainer's own
   run), structured channel pruning with fine-tuning, FLOPs/params/latency/top-1 before
   and after, and pruned + INT8.

    flock /tmp/caltech-edge-bench.lock python benchmarks/bench_compress.py [--quick]

Writes ``benchmarks/results/bench_compress.json`` and the report files (md/json/PNG)
under ``--out``; prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("CALTECH_EDGE_SHARED_DATA", REPO.parent / "shared" / "data"))


def _threads() -> None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)


def _runtime(path, hint=None):
    from caltech_edge.runtime.backends import open_runtime

    return open_runtime(path, precision_hint=hint)


def _round_robin(fns: dict, sample, *, rounds: int, iters: int) -> dict[str, dict]:
    """Best-of-rounds median per variant, variants interleaved round by round."""
    from caltech_edge._bench import time_ms

    best: dict[str, dict] = {}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time_ms(lambda fn=fn: fn(sample), warmup=3, iters=iters).to_dict()
            if name not in best or t["median_ms"] < best[name]["median_ms"]:
                best[name] = t
    return best


def _real_calibration(data: Path, spec, n: int, split=None):
    from caltech_edge.data.calibration import CalibrationReader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CalibrationReader.from_dataset(
            data / "caltech256-sample", spec=spec, calib_size=n, split=split
        )


# -- part 1 ----------------------------------------------------------------------------
def speed(args, work: Path) -> dict:
    import torch

    from caltech_edge.card import ModelCard
    from caltech_edge.compress.onnx_int8 import quantize_onnx
    from caltech_edge.compress.openvino_int8 import quantize_openvino
    from caltech_edge.data.transforms import PreprocessSpec
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.export.openvino import onnx_to_openvino
    from caltech_edge.models.torchvision_zoo import create_model

    spec = PreprocessSpec(image_size=224)
    calib = _real_calibration(args.data, spec, args.calib)
    model = create_model("resnet18", 5, weights=None).eval()
    for m in model.modules():  # BN statistics of real images, so INT8 ranges are realistic
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model.train()(torch.from_numpy(np.concatenate(list(calib)[:32])))
    model.eval()
    card = ModelCard(arch="resnet18", class_names=tuple("abcde"), preprocess=spec)
    onnx_path = export_onnx(model, card, work / "r18" / "model.onnx")
    xml = onnx_to_openvino(onnx_path, work / "r18" / "model.xml", card=card)
    ort8 = quantize_onnx(onnx_path, work / "r18-int8" / "model.onnx", calibration=calib)
    ort8s = quantize_onnx(
        onnx_path, work / "r18-int8s" / "model.onnx", calibration=calib, activation_type="int8"
    )
    ov8 = quantize_openvino(xml, work / "r18-ov8" / "model.xml", calibration=calib)
    _threads()
    sample = np.ascontiguousarray(next(iter(calib)))
    tmodel = model

    def eager(x):
        with torch.no_grad():
            return tmodel(torch.from_numpy(x))

    fns = {
        "PyTorch eager FP32": eager,
        "ONNX Runtime FP32": _runtime(onnx_path).infer,
        "ONNX Runtime INT8 (uint8 act, default)": _runtime(ort8).infer,
        "ONNX Runtime INT8 (int8 act)": _runtime(ort8s).infer,
        "OpenVINO FP32 (f32 hint)": _runtime(xml, "f32").infer,
        "OpenVINO FP32 IR, device default (bf16/AMX)": _runtime(xml).infer,
        "OpenVINO INT8 (NNCF)": _runtime(ov8).infer,
    }
    timings = _round_robin(fns, sample, rounds=args.rounds, iters=args.iters)
    np.save(work / "sample.npy", sample)
    isa = {}
    for level in ("AVX2", "AVX512_CORE"):
        env = dict(os.environ, ONEDNN_MAX_CPU_ISA=level)
        cmd = [
            sys.executable,
            __file__,
            "--isa-child",
            str(work),
            "--iters",
            str(args.iters),
            "--rounds",
            str(args.rounds),
        ]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        isa[level] = json.loads(out.stdout.strip().splitlines()[-1])
    ort32 = timings["ONNX Runtime FP32"]["median_ms"]
    eager32 = timings["PyTorch eager FP32"]["median_ms"]
    rows = [
        {
            "variant": k,
            "median_ms": v["median_ms"],
            "p90_ms": v["p90_ms"],
            "vs_ort_fp32": ort32 / v["median_ms"],
            "vs_torch_eager": eager32 / v["median_ms"],
        }
        for k, v in timings.items()
    ]
    return {
        "rows": rows,
        "isa": isa,
        "files": {
            "ort_int8_bytes": ort8.stat().st_size,
            "onnx_fp32_bytes": onnx_path.stat().st_size,
        },
    }


def isa_child(work: Path, iters: int, rounds: int) -> None:
    sample = np.load(work / "sample.npy")
    fns = {
        "OpenVINO INT8 (NNCF)": _runtime(work / "r18-ov8" / "model.xml").infer,
        "OpenVINO FP32 (f32 hint)": _runtime(work / "r18" / "model.xml", "f32").infer,
        "ONNX Runtime INT8 (uint8 act)": _runtime(work / "r18-int8" / "model.onnx").infer,
    }
    t = _round_robin(fns, sample, rounds=rounds, iters=iters)
    print(json.dumps({k: v["median_ms"] for k, v in t.items()}))


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
            learning_rate=0.001,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "compress")
    parser.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_compress.json"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--calib", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=12, help="fine-tune epochs per prune step")
    parser.add_argument("--prune-amounts", type=float, nargs="+", default=[0.3, 0.5])
    parser.add_argument("--prune-steps", type=int, default=2)
    parser.add_argument("--prune-lr", type=float, default=0.005)
    parser.add_argument("--train-per-class", type=int, default=30, help="pruning part's split")
    parser.add_argument("--parts", nargs="+", default=["speed", "accuracy", "pruning"])
    parser.add_argument("--isa-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.isa_child:
        isa_child(args.isa_child, args.iters, args.rounds)
        return
    import logging

    logging.basicConfig(level=logging.WARNING)
    from caltech_edge._bench import machine_info, markdown_table

    result = {"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="bench-compress-") as tmp:
        work = Path(tmp)
        if "speed" in args.parts:
            result["speed"] = speed(args, work)
            print("\n## ResNet-18 224, batch 1\n")
            print(
                markdown_table(
                    result["speed"]["rows"],
                    ["variant", "median_ms", "p90_ms", "vs_ort_fp32", "vs_torch_eager"],
                )
            )
            print("\nISA-limited (ms):", json.dumps(result["speed"]["isa"]))
        if "accuracy" in args.parts:
            result["accuracy"] = accuracy(args, work)
            print(f"\n## Real SqueezeNet, {result['accuracy']['test_images']} test images\n")
            print(
                markdown_table(
                    result["accuracy"]["rows"],
                    ["variant", "top1", "agreement_with_fp32", "size_mb"],
                )
            )
        if "pruning" in args.parts:
            result["pruning"] = pruning(args, work)
            print("\n## Pruning (SqueezeNet fine-tuned on the sample)\n")
            print(
                markdown_table(
                    result["pruning"]["rows"],
                    ["variant", "top1", "latency_ms", "params", "macs", "size_bytes"],
                )
            )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
