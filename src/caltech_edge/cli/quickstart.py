"""``caltech-edge quickstart``: the whole pipeline on the synthetic default (or --data)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "quickstart",
        help="run the whole pipeline: data, train, prune, export, quantize, package, device",
        description=(
            "Without --data, generates the SYNTHETIC default dataset; then trains, evaluates, "
            "prunes, exports to every format (verified), quantizes, packages for DeepLens, runs "
            "the device runtime on a generated video (MQTT when a broker answers, else a file) "
            "and prints accuracy, size and latency per format."
        ),
    )
    p.add_argument("--data", type=Path, help="a Caltech-256 (or class-per-folder) tree")
    p.add_argument("--out", type=Path, default=Path("quickstart-out"), help="output directory")
    p.add_argument("--arch", default="resnet18", help="torchvision architecture (default resnet18)")
    p.add_argument("--weights", help="imagenet | none | PATH (default: none on synthetic data)")
    p.add_argument("--image-size", type=int, help="input size (default 64 synthetic, 224 real)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--classes", type=int, default=6, help="synthetic classes")
    p.add_argument("--per-class", type=int, default=48, help="synthetic images per class")
    p.add_argument("--train-per-class", type=int, default=30)
    p.add_argument("--mqtt-host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_quickstart)


def _quickstart(args: argparse.Namespace) -> int:
    from ..quickstart import QuickstartConfig, quickstart

    cfg = QuickstartConfig(
        data=args.data,
        out=args.out,
        arch=args.arch,
        weights=args.weights,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        classes=args.classes,
        per_class=args.per_class,
        train_per_class=args.train_per_class,
        mqtt_host=args.mqtt_host,
        mqtt_port=args.mqtt_port,
        seed=args.seed,
        progress=not args.no_progress,
    )
    summary = quickstart(cfg)
    return 0 if summary["device"].get("delivered_all", False) else 1
