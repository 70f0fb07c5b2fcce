"""Training and evaluation: one entry point for every framework.

``train(config, *, data, out)`` looks ``config.framework`` up in the frameworks registry
(:mod:`caltech_edge.frameworks.base`) and runs that trainer; ``evaluate(run, *, data)``
does the same for the framework recorded in the run's model card. Importing this package
imports neither torch nor mxnet.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from ..card import ModelCard
    from ..config import TrainConfig
    from ..rundir import RunDir

__all__ = ["evaluate", "train"]


def train(
    config: TrainConfig,
    *,
    data: str | Path,
    out: str | Path,
    model: nn.Module | None = None,
    card: ModelCard | None = None,
    resume: bool = True,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunDir:
    """Train per ``config`` on the dataset at ``data``; write the run directory ``out``.

    ``model=``/``card=`` inject an already-built torch model (e.g. a pruned one) to
    fine-tune; only the torch framework accepts them (others raise ConfigError).
    ``on_epoch(entry)`` is called with each finished epoch's metrics (the tuner reports them
    to its pruner and stops a bad trial by raising); trainers without it raise ConfigError.
    """
    from ..frameworks.base import get_framework

    framework = get_framework(config.framework.value)
    trainer = framework.train
    kwargs: dict[str, Any] = {"resume": resume, "progress": progress}
    if model is not None or card is not None:  # a framework that cannot inject says so
        kwargs.update(model=model, card=card)
    if on_epoch is not None:
        from ..errors import ConfigError

        if not getattr(framework, "epoch_callback", False):
            raise ConfigError(
                f"the {config.framework.value} trainer does not report epochs (on_epoch=); "
                "use framework 'torch'"
            )
        kwargs["on_epoch"] = on_epoch
    return trainer(config, data=data, out=out, **kwargs)


def evaluate(run: RunDir | str | Path, *, data: str | Path, split: str = "test") -> dict[str, Any]:
    """Metrics (top1, top5, images, per_class, confusion) of a finished run on ``split``."""
    from ..frameworks.base import get_evaluator
    from ..rundir import RunDir

    run = run if isinstance(run, RunDir) else RunDir(run)
    framework = run.load_card().framework
    return get_evaluator(framework)(run, data=data, split=split)
