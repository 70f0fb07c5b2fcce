"""One trial = one ordinary training run, reporting each epoch to Optuna's pruner.

Nothing about training is re-implemented here: a trial builds a :class:`TrainConfig` from the
static hyperparameters plus the sampled ones and calls :func:`caltech_edge.train.train`, so
its run directory is the same as ``caltech-edge train`` writes (and can be exported). The
trainer's ``on_epoch`` hook reports the epoch's validation metric and raises
``optuna.TrialPruned`` when the pruner says the trial is behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import Strategy, TrainConfig
from ..errors import ConfigError
from .space import SearchSpace
from .storage import worker_identity

#: config fields that only shape how the head is optimised: the frozen backbone's features
#: do not depend on them, so a space touching nothing else can reuse cached features
HEAD_FIELDS = frozenset(
    {
        "epochs",
        "batch_size",
        "learning_rate",
        "backbone_lr_mult",
        "optimizer",
        "momentum",
        "weight_decay",
        "beta1",
        "beta2",
        "eps",
        "gamma",
        "scheduler",
        "lr_scheduler_step",
        "lr_scheduler_factor",
        "warmup_epochs",
        "label_smoothing",
        "weighted_loss",
        "early_stopping",
        "seed",
        "top_k",
        "checkpoint_frequency",
        "num_workers",
        "notes",
    }
)


def touched_fields(base: TrainConfig, space: SearchSpace) -> set[str]:
    """Config fields the space can change (SageMaker names resolved to ours)."""
    before = base.to_dict()
    fields: set[str] = set()
    for param in space.params:
        for value in param.endpoints():
            after = base.replace(**{param.name: value}).to_dict()
            fields |= {k for k in after if after[k] != before[k]}
            fields.add(_field_name(base, param.name))
    return fields


def _field_name(base: TrainConfig, name: str) -> str:
    return name if name in base.to_dict() else ""


def plan_feature_cache(base: TrainConfig, space: SearchSpace) -> tuple[bool, str]:
    """Whether trials train the head on cached features, and why (shown in the summary)."""
    if base.strategy != Strategy.HEAD:
        return False, (
            f"off: strategy is {base.strategy.value!r}, the backbone trains "
            "(set strategy 'head' for a head-only search)"
        )
    other = sorted(touched_fields(base, space) - HEAD_FIELDS - {""})
    if other:
        return False, f"off: the space tunes {', '.join(other)}, which change the features"
    if base.augmentation.value != "none":
        return False, f"off: augmentation {base.augmentation.value!r} changes features each epoch"
    return True, "on: head-only space, backbone features computed once and shared by all trials"


def trial_config(
    base: TrainConfig, space: SearchSpace, params: dict[str, Any], cache: bool
) -> TrainConfig:
    """The training config of one trial: static hyperparameters + sampled ones."""
    config = base.replace(**params)
    extra: dict[str, Any] = {}
    if cache:
        extra["cache_features"] = True
    if space.history_key == "val_loss":  # keep the epoch with the best loss, as tuned
        extra["early_stopping.metric"] = "loss"
    return config.replace(**extra) if extra else config


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


class Objective:
    """The callable handed to ``study.optimize``; picklable settings only."""

    def __init__(
        self, *, data: str, out: str, base: TrainConfig, space: SearchSpace, cache: bool
    ) -> None:
        self.data, self.out, self.base, self.space, self.cache = data, out, base, space, cache

    def run_dir(self, number: int) -> Path:
        return Path(self.out) / "trials" / f"trial-{number:04d}"

    def __call__(self, trial: Any) -> float:
        import optuna

        from ..rundir import RunDir
        from ..train import train

        trial.set_user_attr("worker", worker_identity())  # first: lets a resume spot it dead
        params = {p.name: _plain(p.suggest(trial)) for p in self.space.params}
        run_dir = self.run_dir(trial.number)
        trial.set_user_attr("hyperparameters", params)
        trial.set_user_attr("run_dir", str(run_dir))
        config = trial_config(self.base, self.space, params, self.cache)
        key = self.space.history_key

        def report(entry: dict[str, Any]) -> None:
            value = entry.get(key)
            if value is None:
                raise ConfigError(f"the objective needs {key!r}: set val_per_class >= 1")
            trial.report(float(value), int(entry["epoch"]))
            if trial.should_prune():
                trial.set_user_attr("epochs", int(entry["epoch"]))
                raise optuna.TrialPruned(f"epoch {entry['epoch']}: {key} {value:.4g}")

        run = train(
            config, data=self.data, out=run_dir, resume=False, progress=False, on_epoch=report
        )
        metrics = json.loads(RunDir(run.root).metrics.read_text())
        best = next(h for h in metrics["history"] if h["epoch"] == metrics["best_epoch"])
        trial.set_user_attr("epochs", int(metrics["epochs_completed"]))
        trial.set_user_attr("best_epoch", int(metrics["best_epoch"]))
        if metrics.get("test"):
            trial.set_user_attr("test_top1", float(metrics["test"]["top1"]))
        return float(best[key])
