"""``caltech-edge tune``: a thin layer over :func:`caltech_edge.tune.tune`.

Joining a study from another machine is the same command with the same ``--storage`` (an
RDB URL both machines reach) and ``--study``; see docs/tuning.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tune",
        help="hyperparameter search (Optuna); SageMaker tuning JSON accepted as written",
        description="Search hyperparameters: every trial is a training run under OUT/trials; "
        "bad trials are pruned from their epoch metrics. Run it again with the same --out "
        "(or --storage/--study) to resume or to join from another machine.",
    )
    p.add_argument("--data", type=Path, required=True, help="dataset root")
    p.add_argument(
        "--space",
        type=Path,
        required=True,
        help="search space JSON: SageMaker HyperParameterTuningJobConfig, a whole "
        "CreateHyperParameterTuningJob request, or the native form (examples/tuning/)",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--trials", type=int, help="finished trials to reach (default: the space's)")
    p.add_argument("--workers", type=int, help="worker processes on this machine")
    p.add_argument(
        "--storage",
        help="journal file path (default OUT/study.journal) or an RDB URL "
        "(postgresql://..., mysql+pymysql://..., sqlite:///...) for many machines",
    )
    p.add_argument("--study", default="caltech-edge", help="study name in the storage")
    p.add_argument(
        "--hyperparameters", type=Path, help="static hyperparameters JSON (ours or SageMaker's)"
    )
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="a static config key, e.g. --set val_per_class=5 (repeatable)",
    )
    p.add_argument("--pruner", help="median | hyperband | asha | none (default: the space's)")
    p.add_argument("--threads", type=int, help="torch threads per worker")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_tune)


def _overrides(items: list[str]) -> dict[str, Any]:
    from ..errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _tune(args: argparse.Namespace) -> int:
    from ..tune import tune

    result = tune(
        data=args.data,
        space=args.space,
        out=args.out,
        trials=args.trials,
        workers=args.workers,
        storage=args.storage,
        study=args.study,
        hyperparameters=args.hyperparameters,
        overrides=_overrides(args.set),
        pruner=args.pruner,
        threads=args.threads,
        progress=not args.no_progress,
    )
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.summary())
    return 0
