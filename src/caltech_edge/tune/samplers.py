"""Search strategies and pruners: SageMaker's names mapped onto Optuna's samplers/pruners.

Two small registries (``STRATEGIES``, ``PRUNERS``) so that the rest of the package never
branches on a strategy's or pruner's name. SageMaker's ``TrainingJobEarlyStoppingType: Auto``
stops a job whose objective is worse than the median of earlier jobs at the same epoch,
which is exactly Optuna's ``MedianPruner``; its Hyperband strategy is Optuna's
``HyperbandPruner`` over epochs, driven by TPE (Optuna's recommended pairing).
"""

from __future__ import annotations

from typing import Any

from .._registry import Registry
from .space import SearchSpace

STRATEGIES = Registry("tuning strategy")
STRATEGIES.register(
    "bayesian", "caltech_edge.tune.samplers:tpe", requires=("optuna",), extra="tune"
)
STRATEGIES.register(
    "hyperband", "caltech_edge.tune.samplers:tpe", requires=("optuna",), extra="tune"
)
STRATEGIES.register(
    "random", "caltech_edge.tune.samplers:random", requires=("optuna",), extra="tune"
)
STRATEGIES.register("grid", "caltech_edge.tune.samplers:grid", requires=("optuna",), extra="tune")

PRUNERS = Registry("pruner")
PRUNERS.register("median", "caltech_edge.tune.samplers:median", requires=("optuna",), extra="tune")
PRUNERS.register(
    "hyperband", "caltech_edge.tune.samplers:hyperband", requires=("optuna",), extra="tune"
)
PRUNERS.register("asha", "caltech_edge.tune.samplers:asha", requires=("optuna",), extra="tune")
PRUNERS.register("none", "caltech_edge.tune.samplers:nop", requires=("optuna",), extra="tune")


def build_sampler(space: SearchSpace, seed: int | None) -> Any:
    """The Optuna sampler for ``space.strategy``; ``seed`` differs per worker process."""
    return STRATEGIES.get(space.strategy)(space, seed)


def build_pruner(name: str, space: SearchSpace, *, epochs: int, trials: int) -> Any:
    """The Optuna pruner ``name`` sized for ``epochs`` per trial and ``trials`` in all."""
    return PRUNERS.get(name)(space, epochs=epochs, trials=trials)


def tpe(space: SearchSpace, seed: int | None) -> Any:
    import optuna

    # multivariate TPE models parameter interactions (lr x batch size), a known win
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=5)


def random(space: SearchSpace, seed: int | None) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def grid(space: SearchSpace, seed: int | None) -> Any:
    import optuna

    return optuna.samplers.GridSampler(space.grid(), seed=seed)


def median(space: SearchSpace, *, epochs: int, trials: int) -> Any:
    import optuna

    # A few finished trials make a median; the first epoch is too noisy to judge by, so
    # pruning starts after epoch 2 (Optuna counts warmup steps from the reported step).
    startup = max(1, min(5, trials // 4))
    return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=min(2, epochs - 1))


def hyperband(space: SearchSpace, *, epochs: int, trials: int) -> Any:
    import optuna

    return optuna.pruners.HyperbandPruner(
        min_resource=space.min_resource or 1, max_resource=epochs, reduction_factor=3
    )


def asha(space: SearchSpace, *, epochs: int, trials: int) -> Any:
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=space.min_resource or 1, reduction_factor=3
    )


def nop(space: SearchSpace, *, epochs: int, trials: int) -> Any:
    import optuna

    return optuna.pruners.NopPruner()
