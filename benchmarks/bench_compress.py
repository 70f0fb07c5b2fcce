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
from pathlib import Path
from typing import Any

import numpy as np

# parts 2 and 3 and the shared helpers; the script's folder is on sys.path when run as a script
from _compress_parts import _real_calibration, _runtime, _threads, accuracy, pruning

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("CALTECH_EDGE_SHARED_DATA", REPO.parent / "shared" / "data"))


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


# -- part 1 ----------------------------------------------------------------------------
def _resnet18_real_bn(calib: Any) -> Any:
    """ResNet-18 with random weights but BatchNorm statistics of real images.

    ImageNet weights cannot be had here; BN statistics re-estimated on ``calib`` keep the
    INT8 activation ranges realistic, and speed does not depend on the weight values.
    """
    import torch

    from caltech_edge.models.torchvision_zoo import create_model

    model = create_model("resnet18", 5, weights=None).eval()
    for m in model.modules():  # BN statistics of real images, so INT8 ranges are realistic
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model.train()(torch.from_numpy(np.concatenate(list(calib)[:32])))
    model.eval()
    return model


def _isa_limited(work: Path, iters: int, rounds: int) -> dict[str, dict]:
    """OpenVINO/ORT medians with oneDNN capped at AVX2 and AVX512_CORE (edge CPUs lack AMX).

    The cap is an environment variable read at library load, so each level runs this
    script again as ``--isa-child`` on the artifacts already in ``work``.
    """
    isa = {}
    for level in ("AVX2", "AVX512_CORE"):
        env = dict(os.environ, ONEDNN_MAX_CPU_ISA=level)
        cmd = [
            sys.executable,
            __file__,
            "--isa-child",
            str(work),
            "--iters",
            str(iters),
            "--rounds",
            str(rounds),
        ]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        isa[level] = json.loads(out.stdout.strip().splitlines()[-1])
    return isa


def _speed_rows(timings: dict[str, dict]) -> list[dict]:
    """One table row per variant, with speed-ups over ORT FP32 and PyTorch eager FP32."""
    ort32 = timings["ONNX Runtime FP32"]["median_ms"]
    eager32 = timings["PyTorch eager FP32"]["median_ms"]
    return [
        {
            "variant": k,
            "median_ms": v["median_ms"],
            "p90_ms": v["p90_ms"],
            "vs_ort_fp32": ort32 / v["median_ms"],
            "vs_torch_eager": eager32 / v["median_ms"],
        }
        for k, v in timings.items()
    ]


def speed(args: argparse.Namespace, work: Path) -> dict:
    import torch

    from caltech_edge.card import ModelCard
    from caltech_edge.compress.onnx_int8 import quantize_onnx
    from caltech_edge.compress.openvino_int8 import quantize_openvino
    from caltech_edge.data.transforms import PreprocessSpec
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.export.openvino import onnx_to_openvino

    spec = PreprocessSpec(image_size=224)
    calib = _real_calibration(args.data, spec, args.calib)
    model = _resnet18_real_bn(calib)
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
    isa = _isa_limited(work, args.iters, args.rounds)
    return {
        "rows": _speed_rows(timings),
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
    parser.add_argument(
        "--prune-lr", type=float, default=0.001, help="fine-tune lr after each prune step"
    )
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
