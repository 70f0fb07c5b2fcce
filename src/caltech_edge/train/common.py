"""Framework-neutral training rules that every trainer calls (torch in-process, Gluon in
the mxnet toolchain), so that both behave the same for the same config.

* which split a run uses (:func:`resolve_split`: ``split_file`` first, then the run's own
  split when resuming, else a fresh seeded one honouring ``test_per_class``);
* which images ``evaluate --split`` means (:func:`evaluation_indices`, including ``all``);
* which epoch is best and when to stop early (:class:`FitState`, :func:`update_state`);
* when to keep an extra per-epoch checkpoint (:func:`checkpoint_due`).

Imports neither torch nor mxnet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import EarlyStoppingMetric, TrainConfig
from ..data.splits import SUBSETS, Split, make_split
from ..errors import DatasetError

if TYPE_CHECKING:  # pragma: no cover
    from ..data.datasets import ImageDataset
    from ..rundir import RunDir

#: the subsets ``evaluate --split`` accepts: the run's own, or every image of the dataset
EVAL_SPLITS = (*SUBSETS, "all")


def resolve_split(config: TrainConfig, dataset: ImageDataset, run: RunDir, *, resume: bool,
                  resume_marker: Any = None) -> Split:  # fmt: skip
    """``split_file`` if given, else the run's own split on resume, else a fresh seeded one.

    ``resume_marker``: the file whose presence means there is something to resume (the
    trainer's last checkpoint); the saved split is reused only then.
    """
    if config.split_file:
        return Split.load(config.split_file, dataset=dataset)
    marker = resume_marker if resume_marker is not None else run.last
    if resume and run.split.is_file() and marker.is_file():
        return Split.load(run.split, dataset=dataset)
    return make_split(
        dataset,
        train_per_class=config.train_per_class,
        val_per_class=config.val_per_class,
        test_per_class=config.test_per_class,
        seed=config.seed,
    )


def evaluation_indices(run: RunDir, dataset: ImageDataset, split: str) -> list[int]:
    """The dataset indices ``evaluate(run, split=...)`` runs on (``all``: every image)."""
    if split == "all":
        indices = list(range(len(dataset)))
    elif split in SUBSETS:
        indices = Split.load(run.split, dataset=dataset).subset(split)
    else:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(EVAL_SPLITS)}")
    if not indices:
        raise DatasetError(f"{run.split}: the {split!r} subset is empty; choose another --split")
    return indices


def checkpoint_due(config: TrainConfig, epoch: int) -> bool:
    """Whether completed ``epoch`` (1-based) also gets its own ``checkpoints/epoch-NNNN`` file."""
    every = config.checkpoint_frequency
    return bool(every) and epoch % every == 0


@dataclass
class FitState:
    """Everything the loop needs to continue after a restart (stored in checkpoints)."""

    epoch: int = 0  # completed epochs
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the last early-stopping improvement
    es_best: float | None = None
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values only (checkpoints load with ``weights_only=True``)."""
        return json.loads(json.dumps(self.__dict__, default=float))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitState:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def score_of(entry: dict[str, Any], metric: EarlyStoppingMetric) -> tuple[float, str]:
    """The selection score of an epoch (higher is better) and which split it came from."""
    split = "val" if entry.get("val_top1") is not None else "train"
    if metric == EarlyStoppingMetric.LOSS:
        return -float(entry[f"{split}_loss"]), split
    return float(entry[f"{split}_top1"]), split


def update_state(state: FitState, entry: dict[str, Any], config: TrainConfig) -> bool:
    """Record an epoch; returns True if it is the new best epoch. Sets ``stopped_early``."""
    es = config.early_stopping
    score, _ = score_of(entry, es.metric)
    state.history.append(entry)
    state.epoch = entry["epoch"]
    is_best = state.best_score is None or score > state.best_score
    if is_best:
        state.best_score, state.best_epoch = score, entry["epoch"]
    if state.es_best is None:
        improved = True
    elif es.relative:
        improved = score > state.es_best + es.min_delta * abs(state.es_best)
    else:
        improved = score > state.es_best + es.min_delta
    if improved:
        state.es_best, state.bad_epochs = score, 0
    else:
        state.bad_epochs += 1
    if (
        es.enabled
        and state.epoch >= es.min_epochs
        and state.bad_epochs >= es.patience
        and state.epoch < config.epochs
    ):
        state.stopped_early = True
    return is_best
