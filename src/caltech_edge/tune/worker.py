"""A worker process: ``python -m caltech_edge.tune.worker SPEC.json INDEX``.

Each worker loads the study from the shared storage and runs trials until the study holds
the requested number of finished (complete or pruned) trials, counting the ones other
workers are running, so K workers never overshoot by more than a race's width. Workers are
separate processes (not threads): each trains with its own share of the CPU threads, and a
killed worker loses only its current trial.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any

from .spec import TuneSpec


def finished_or_running(study: Any) -> int:
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=states))


def load_study(spec: TuneSpec, *, seed: int | None = None) -> Any:
    """The study with this spec's sampler and pruner (``seed`` differs per worker)."""
    import optuna

    from .samplers import build_pruner, build_sampler
    from .storage import open_storage

    return optuna.load_study(
        study_name=spec.study,
        storage=open_storage(spec.storage),
        sampler=build_sampler(spec.space, seed),
        pruner=build_pruner(spec.pruner, spec.space, epochs=spec.base.epochs, trials=spec.trials),
    )


def run_worker(spec: TuneSpec, index: int) -> int:
    """Run trials until the study is full; returns how many this worker ran."""
    import optuna

    from ..train.features import feature_cache
    from .objective import Objective

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("caltech_edge.frameworks", "caltech_edge.train"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if spec.threads:
        import torch

        torch.set_num_threads(spec.threads)
    seed = None if spec.seed is None else spec.seed * 1000 + index
    study = load_study(spec, seed=seed)
    objective = Objective(
        data=spec.data, out=spec.out, base=spec.base, space=spec.space, cache=spec.cache
    )
    cache = feature_cache(spec.feature_dir) if spec.cache else contextlib.nullcontext()
    ran = 0
    with cache:
        while finished_or_running(study) < spec.trials:
            exhausted = getattr(study.sampler, "is_exhausted", None)  # a finished grid
            if exhausted is not None and exhausted(study):
                break
            study.optimize(objective, n_trials=1, catch=(), gc_after_trial=True)
            ran += 1
    return ran


def main(argv: list[str] | None = None) -> int:
    from ..errors import CaltechEdgeError

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m caltech_edge.tune.worker SPEC.json INDEX", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        run_worker(TuneSpec.load(args[0]), int(args[1]))
    except CaltechEdgeError as exc:
        print(f"caltech-edge tune worker: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a subprocess by caltech_edge.tune.run
    sys.exit(main())
