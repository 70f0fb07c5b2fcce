"""The seam between the training API and each framework's trainer.

``caltech_edge.train.train`` and ``.evaluate`` look the framework up in :data:`FRAMEWORKS`
and call its entry points, so adding a framework is one ``register`` line, not another
branch. Entries are imported lazily: importing this module imports neither torch nor mxnet.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .._registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from ..config import TrainConfig
    from ..rundir import RunDir


class Trainer(Protocol):
    """``train(config, *, data, out, resume=True, progress=True) -> RunDir``.

    Writes the run directory described in :mod:`caltech_edge.rundir`. The torch trainer also
    accepts ``model=``/``card=`` to fine-tune an already-built model (e.g. a pruned one).
    """

    def __call__(
        self,
        config: TrainConfig,
        *,
        data: str | Path,
        out: str | Path,
        resume: bool = True,
        progress: bool = True,
        **kwargs: Any,
    ) -> RunDir: ...


class Evaluator(Protocol):
    """``evaluate(run, *, data, split="test") -> dict`` with top1, top5, images, per_class."""

    def __call__(self, run: RunDir, *, data: str | Path, split: str = "test") -> dict[str, Any]: ...


#: framework name -> trainer entry point
FRAMEWORKS = Registry("framework")
FRAMEWORKS.register(
    "torch", "caltech_edge.frameworks.torch:train", requires=("torch",), extra="torch"
)
FRAMEWORKS.register(
    "gluon", "caltech_edge.frameworks.gluon:train", requires=("mxnet",), extra="mxnet"
)

#: framework name -> evaluator of a finished run of that framework
EVALUATORS = Registry("framework")
EVALUATORS.register(
    "torch", "caltech_edge.frameworks.torch:evaluate", requires=("torch",), extra="torch"
)
EVALUATORS.register(
    "gluon", "caltech_edge.frameworks.gluon:evaluate", requires=("mxnet",), extra="mxnet"
)


def get_trainer(framework: str) -> Trainer:
    return FRAMEWORKS.get(str(framework))


def get_evaluator(framework: str) -> Evaluator:
    return EVALUATORS.get(str(framework))
