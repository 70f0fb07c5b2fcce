"""The framework axis: one object per training framework behind one registry.

Everything that depends on how a model was trained asks the run's framework object, never
its name: ``caltech_edge.train`` (train, evaluate), export (the formats made from the
model itself, loading a run or a foreign checkpoint as a source), verification (a run as
the reference predictor) and benchmarks (the eager baseline). Adding a framework is one
``register`` line and one module. Entries are imported lazily: importing this module imports
neither torch nor mxnet. ``toolchain`` names the isolated environment a framework's work
runs in when its library cannot be imported in the core (:mod:`caltech_edge.toolchains`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .._registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..card import ModelCard
    from ..config import TrainConfig
    from ..export.formats import ExportFormat
    from ..export.pipeline import ExportSource
    from ..rundir import RunDir

    Predict = Callable[[np.ndarray], np.ndarray]


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


class Framework(Protocol):
    """What the rest of the library may ask of a training framework."""

    name: str
    #: export formats a run of this framework already *is* (Gluon runs are MXNet files)
    native_formats: tuple[str, ...]

    def architectures(self) -> tuple[str, ...]: ...

    def train(
        self, config: TrainConfig, *, data: str | Path, out: str | Path, **kwargs: Any
    ) -> RunDir: ...

    def evaluate(self, run: RunDir, *, data: str | Path, split: str = "test") -> dict[str, Any]: ...

    def predictor(self, run: RunDir) -> tuple[Predict, ModelCard, str]:
        """A run as ``(predict(batch) -> logits, card, description)`` (verification)."""
        ...

    def run_source(self, run: RunDir, card: ModelCard) -> ExportSource:
        """A finished run as an export source."""
        ...

    def checkpoint_source(
        self,
        checkpoint: Path,
        arch: str,
        names: tuple[str, ...],
        *,
        image_size: int,
        workdir: Any = None,
    ) -> ExportSource: ...

    def produce(
        self,
        fmt: ExportFormat,
        src: ExportSource,
        dst: Path,
        *,
        opset: int,
        dynamic_batch: bool,
    ) -> Path:
        """Write ``fmt`` from the source model itself (rows made from "model", natives)."""
        ...

    def eager_baseline(self, run: RunDir, *, threads: int) -> tuple[Predict, float] | None:
        """``(infer, size_mb)`` of the run in its own framework for benchmarks, or None."""
        ...


#: the members' names, for tables that refer to them (the architecture table)
TORCH = "torch"
GLUON = "gluon"

#: framework name -> its object (caltech_edge.frameworks.<module>:<OBJECT>)
FRAMEWORKS = Registry("framework")
FRAMEWORKS.register(
    TORCH,
    "caltech_edge.frameworks.torch_framework:TORCH",
    requires=("torch",),
    extra="torch",
    toolchain="",
    checkpoint_suffixes=(".pt", ".pth", ".bin"),
    default_checkpoint=True,  # a checkpoint with any other suffix is tried as a state dict
)
FRAMEWORKS.register(
    GLUON,
    "caltech_edge.frameworks.gluon_framework:GLUON",
    toolchain="mxnet",  # mxnet in-process when importable, else the isolated toolchain
    checkpoint_suffixes=(".params",),
)


def get_framework(name: str) -> Framework:
    """The framework object called ``name`` (did-you-mean error for unknown names)."""
    return FRAMEWORKS.get(str(name))


def framework_for_checkpoint(path: str | Path) -> Framework:
    """The framework that loads a foreign checkpoint file, by its suffix."""
    suffix = Path(path).suffix.lower()
    entries = list(FRAMEWORKS)
    for entry in entries:
        if suffix in entry.info.get("checkpoint_suffixes", ()):
            return entry.load()
    return next(e for e in entries if e.info.get("default_checkpoint")).load()


def get_trainer(framework: str) -> Trainer:
    return get_framework(framework).train


def get_evaluator(framework: str) -> Evaluator:
    return get_framework(framework).evaluate
