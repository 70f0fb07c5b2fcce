"""Real transfer learning result: Caltech-101 from ImageNet SqueezeNet features, head only.

Uses the complete Caltech-101 in ``../shared/data/caltech101`` with its published split
(``caltech101-train.txt`` 6,096 / ``caltech101-test.txt`` 3,049 images, 102 classes
including ``BACKGROUND_Google``) and the real ImageNet SqueezeNet 1.1 features in
``../shared/data/weights/squeezenet1_1_caltech256.pth`` (its Caltech-256 head is dropped;
a new 102-class head is trained). Strategy ``head`` with ``cache_features``: the frozen
backbone runs once per image, then the head trains on the cache for many epochs.

    python benchmarks/caltech101_finetune.py [--data ../shared/data] [--precision bf16] [--epochs 10]

Prints test top-1/top-5 and wall time (feature extraction, head epochs, test evaluation)
and writes JSON with machine info to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from caltech_edge._bench import machine_info, markdown_table
from caltech_edge.config import TrainConfig
from caltech_edge.data.datasets import open_dataset
from caltech_edge.data.splits import split_from_files
from caltech_edge.train import train

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--precision", default="bf16", help="fp32 | bf16 | auto")
    parser.add_argument("--run", type=Path, default=Path("/tmp/caltech101_head_run"))
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "caltech101_finetune.json"
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    root = args.data / "caltech101"
    start = time.perf_counter()
    dataset = open_dataset(root)
    split = split_from_files(
        dataset, args.data / "caltech101-train.txt", args.data / "caltech101-test.txt"
    )
    split_path = split.save(args.run.parent / (args.run.name + "-split.json"))
    config = TrainConfig(
        arch="squeezenet1_1",
        weights=str(args.data / "weights" / "squeezenet1_1_caltech256.pth"),
        strategy="head",
        cache_features=True,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=64,
        optimizer="adam",
        learning_rate=args.lr,
        weight_decay=0.0,
        scheduler="cosine",
        precision=args.precision,
        split_file=str(split_path),
        seed=0,
    )
    run = train(config, data=root, out=args.run, resume=False, progress=True)
    wall = time.perf_counter() - start
    metrics = json.loads(run.metrics.read_text())
    test = metrics["test"]
    history = metrics["history"]
    head_seconds = sum(h["seconds"] for h in history)
    row = {
        "model": "squeezenet1_1 (ImageNet features) + new head",
        "strategy": "head, cached features",
        "precision": args.precision,
        "image_size": args.image_size,
        "train/test images": f"{split.sizes['train']}/{test['images']}",
        "classes": len(dataset.classes),
        "epochs": len(history),
        "test top-1": f"{test['top1']:.4f}",
        "test top-5": f"{test['top5']:.4f}",
        "mean class acc": f"{test['mean_class_accuracy']:.4f}",
        "head training s": f"{head_seconds:.1f}",
        "wall s (total)": f"{wall:.0f}",
    }
    print(markdown_table([row], list(row)))
    result = {
        "benchmark": "caltech101_finetune",
        "result": row,
        "test_top1": test["top1"],
        "test_top5": test["top5"],
        "mean_class_accuracy": test["mean_class_accuracy"],
        "wall_seconds": wall,
        "head_training_seconds": head_seconds,
        "history": history,
        "config": config.to_dict(),
        "machine": machine_info(),
        "note": "2-core machine shared with other jobs while measuring",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
