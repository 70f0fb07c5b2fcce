"""Every format and precision of ResNet-18 and SqueezeNet 1.1 against the baselines.

What ``caltech-edge benchmark`` reports, for the two models of docs/benchmarks.md:

* ``squeezenet``: the real ImageNet SqueezeNet 1.1 features with their Caltech-256 head
  (``../shared/data/weights``), 224 px, top-1 on the real 5-class Caltech-256 sample (the
  images not used for INT8 calibration);
* ``resnet18``: ResNet-18 at 224 px trained briefly from scratch on the SYNTHETIC dataset
  (no ImageNet ResNet weights can be had offline here), so its top-1 is on synthetic images:
  read its rows for latency and for agreement between formats, not for accuracy.

Each model is exported to every format (INT8 calibrated on its training split, every
artifact verified), then timed in interleaved rounds next to PyTorch eager FP32, a bare
ONNX Runtime session and, per format, its framework's own bare call (LiteRT interpreter,
ExecuTorch method: the ``vs_raw`` column, the issue-13 target of <= 1.05x overhead). Run it alone (the 2-core machine is easily disturbed):

    flock /tmp/caltech-edge-bench.lock .venv/bin/python benchmarks/bench_formats.py
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

from caltech_edge.benchmark import benchmark
from caltech_edge.card import ModelCard, read_class_names
from caltech_edge.config import TrainConfig
from caltech_edge.data.datasets import open_dataset
from caltech_edge.data.splits import make_split
from caltech_edge.data.synth import synthesize
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.export.formats import FORMATS
from caltech_edge.export.pipeline import export
from caltech_edge.models import load_state_dict_file
from caltech_edge.rundir import RunDir
from caltech_edge.train import train

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CALTECH_EDGE_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"


def squeezenet_run(work: Path) -> tuple[RunDir, Path]:
    """A run directory around the real SqueezeNet weights, split 30 per class for calibration."""
    data = SHARED / "caltech256-sample"
    run = RunDir(work / "squeezenet-run")
    run.root.mkdir(parents=True, exist_ok=True)
    names = read_class_names(SHARED / "weights" / "squeezenet1_1_caltech256_idx_to_class.txt")
    torch.save(
        load_state_dict_file(SHARED / "weights" / "squeezenet1_1_caltech256.pth"), run.weights
    )
    ModelCard(arch="squeezenet1_1", class_names=names, preprocess=PreprocessSpec(image_size=224),
              dataset="caltech256-sample").save(run.card)  # fmt: skip
    make_split(open_dataset(data), train_per_class=30, seed=0).save(run.split)
    return run, data


def resnet18_run(work: Path) -> tuple[RunDir, Path]:
    """ResNet-18 at 224 px, five epochs from scratch on the synthetic dataset."""
    data = synthesize(work / "synthetic", classes=6, per_class=40, size=256, seed=0)
    config = TrainConfig(arch="resnet18", weights="none", image_size=224, epochs=5, batch_size=16,
                         learning_rate=0.01, train_per_class=20, precision="auto")  # fmt: skip
    return train(config, data=data, out=work / "resnet18-run", progress=True), data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="squeezenet,resnet18")
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--formats",
        default=",".join(FORMATS),
        help="comma-separated rows of the format table (default: all, device rows included)",
    )
    args = parser.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    builders = {"squeezenet": squeezenet_run, "resnet18": resnet18_run}
    with tempfile.TemporaryDirectory(prefix="bench-formats-") as tmp:
        for name in args.models.split(","):
            run, data = builders[name](Path(tmp))
            export(run.root, formats=formats, out=Path(tmp) / f"{name}-export", data=data)
            result = benchmark(Path(tmp) / f"{name}-export", data=data, iters=args.iters,
                               warmup=10, max_images=400)  # fmt: skip
            out = args.out / f"bench_formats_{name}"
            result.save(out)
            print(f"\n## {name}\n\n{result.markdown()}")
            print(f"written to {out}: {json.dumps(sorted(p.name for p in out.iterdir()))}")


if __name__ == "__main__":
    main()
