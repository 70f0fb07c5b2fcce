"""``caltech-edge train`` and ``caltech-edge evaluate``: a thin layer over caltech_edge.train.

The config is built as: defaults (or ``--hyperparameters FILE``, ours or SageMaker's),
then the explicit flags, then ``--set key=value`` pairs, all through
``TrainConfig.replace`` so every value is validated the same way.
Distributed: ``torchrun --nproc_per_node 2 -m caltech_edge.cli train ...``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import print_json

# flag -> TrainConfig field, for the common options that get a flag of their own
_FLAGS = {
    "framework": "framework",
    "arch": "arch",
    "weights": "weights",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "learning_rate",
    "image_size": "image_size",
    "strategy": "strategy",
    "unfreeze_stages": "unfreeze_stages",
    "optimizer": "optimizer",
    "scheduler": "scheduler",
    "precision": "precision",
    "seed": "seed",
    "train_per_class": "train_per_class",
    "val_per_class": "val_per_class",
    "split_file": "split_file",
    "augmentation": "augmentation",
    "min_crop_area": "min_crop_area",
    "num_workers": "num_workers",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..config import (
        AugmentationType,
        Framework,
        Optimizer,
        Precision,
        Scheduler,
        Strategy,
    )

    p = subparsers.add_parser(
        "train",
        help="fine-tune a classifier (torch or gluon) and write a run directory",
        description="Fine-tune an ImageNet classifier on a class-per-folder or Caltech-256 "
        "dataset. Under torchrun every process trains on its shard; rank 0 writes the run.",
    )
    p.add_argument("--data", type=Path, required=True, help="dataset root")
    p.add_argument("--out", type=Path, required=True, help="run directory to write")
    p.add_argument(
        "--hyperparameters",
        type=Path,
        help="JSON config: ours (a run's config.json) or SageMaker hyperparameters",
    )
    p.add_argument("--framework", choices=[f.value for f in Framework])
    p.add_argument("--arch", help=_arch_help())
    p.add_argument("--weights", help="imagenet (local cache only) | none | PATH to a state dict")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--image-size", type=int)
    p.add_argument("--strategy", choices=[s.value for s in Strategy])
    p.add_argument("--unfreeze-stages", type=int, help="k for --strategy last_k")
    p.add_argument("--optimizer", choices=[o.value for o in Optimizer])
    p.add_argument("--scheduler", choices=[s.value for s in Scheduler])
    p.add_argument("--precision", choices=[s.value for s in Precision])
    p.add_argument("--augmentation", choices=[a.value for a in AugmentationType])
    p.add_argument(
        "--min-crop-area",
        type=float,
        help="smallest area fraction of the random crop (default 0.25 with --augmentation)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--train-per-class", type=int)
    p.add_argument("--val-per-class", type=int)
    p.add_argument("--split-file", type=Path, help="a split.json to reuse")
    p.add_argument("--num-workers", type=int)
    p.add_argument(
        "--cache-features",
        action="store_true",
        default=None,
        help="head strategy: run the frozen backbone once and train the head on the cache",
    )
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="any config key (ours or SageMaker's), e.g. --set label_smoothing=0.1 "
        "--set lr_scheduler_step=10,20 (repeatable)",
    )
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    p.set_defaults(func=_train)

    p = subparsers.add_parser("evaluate", help="evaluate a run directory on a dataset split")
    p.add_argument("run", type=Path, help="run directory written by `caltech-edge train`")
    p.add_argument("--data", type=Path, required=True, help="dataset root")
    p.add_argument("--split", default="test", help="train | val | test | all (default: test)")
    p.add_argument("--json", action="store_true", help="print all metrics as JSON")
    p.set_defaults(func=_evaluate)


def build_config(args: argparse.Namespace) -> Any:
    """The TrainConfig described by ``args`` (file, then flags, then --set)."""
    from ..config import TrainConfig
    from ..errors import ConfigError

    config = TrainConfig.from_file(args.hyperparameters) if args.hyperparameters else TrainConfig()
    overrides: dict[str, Any] = {}
    for flag, key in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = str(value) if isinstance(value, Path) else value
    if args.cache_features:
        overrides["cache_features"] = True
        overrides.setdefault("strategy", "head")
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    return config.replace(**overrides) if overrides else config


def _train(args: argparse.Namespace) -> int:
    import json

    from ..train import train

    config = build_config(args)
    run = train(
        config,
        data=args.data,
        out=args.out,
        resume=not args.no_resume,
        progress=not args.no_progress,
    )
    if not run.metrics.is_file():  # a non-zero torchrun rank
        return 0
    metrics = json.loads(run.metrics.read_text())
    if args.json:
        print_json({"run": str(run.root), **metrics})
        return 0
    test = metrics.get("test") or {}
    print(f"run: {run.root}")
    print(f"epochs: {metrics.get('epochs_completed')}  best epoch: {metrics.get('best_epoch')}")
    if test:
        print(
            f"test top-1: {test['top1']:.4f}  top-5: {test['top5']:.4f}  ({test['images']} images)"
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ..train import evaluate

    result = evaluate(args.run, data=args.data, split=args.split)
    if args.json:
        print_json(result)
        return 0
    print(f"{args.run} on {result.get('data', args.data)} [{args.split}]")
    print(f"top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  images {result['images']}")
    rows = sorted(
        ((v["accuracy"], k) for k, v in result["per_class"].items() if v["accuracy"] is not None)
    )
    for acc, name in rows[:10]:
        print(f"  {acc:7.3f}  {name}")
    return 0


def _arch_help() -> str:
    """The choices per framework, from the architecture table (gluon also takes zoo names)."""
    from ..frameworks.base import FRAMEWORKS
    from ..models.architectures import names_for

    return "; ".join(f"{e.name}: {', '.join(names_for(e.name))}" for e in FRAMEWORKS)
