"""The MXNet Gluon member of the framework axis, behind the ``mxnet`` toolchain.

MXNet 1.9.1 cannot be imported beside the core's numpy 2, so every method that needs it
goes through :func:`caltech_edge.toolchains.run`: in-process where mxnet imports (a DeepLens
image), else in the isolated ``mxnet`` environment's worker. Nothing here imports mxnet;
the user-facing behaviour (``caltech-edge train --framework gluon``, evaluate, export,
verify, package) is the same either way.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ExportError

if TYPE_CHECKING:  # pragma: no cover
    from ..card import ModelCard
    from ..config import TrainConfig
    from ..export.formats import ExportFormat
    from ..export.pipeline import ExportSource
    from ..rundir import RunDir

TOOLCHAIN = "mxnet"
_REMOTE = "caltech_edge.frameworks.gluon_remote:"


def _run(function: str, **kwargs: Any) -> Any:
    from ..toolchains import run

    return run(TOOLCHAIN, _REMOTE + function, **kwargs)


def _abs(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def portable_weights(config: TrainConfig, out: Path) -> TrainConfig:
    """Point ``config.weights`` at an ``.npz`` copy of a torchvision ``.pth`` (toolchain route).

    The mxnet toolchain has no torch, so the core (which has) converts the state dict to
    plain arrays in the run folder first; the Gluon trainer reads those with numpy.
    """
    from ..toolchains import needs_toolchain

    source = Path(str(config.weights)).expanduser()
    if config.split_file and not Path(config.split_file).is_absolute():
        config = config.replace(split_file=_abs(config.split_file))
    if not source.is_file():
        return config  # "imagenet", "none", or a missing file the trainer reports
    if source.suffix not in (".pth", ".pt") or not needs_toolchain(TOOLCHAIN):
        return config.replace(weights=_abs(source))
    from .gluon_models import torchvision_state_to_npz

    out.mkdir(parents=True, exist_ok=True)
    converted = torchvision_state_to_npz(source, out / "init-weights.npz")
    return config.replace(weights=str(converted.resolve()))


class GluonFramework:
    """Gluon model-zoo networks; a run *is* an MXNet symbol/params pair (DeepLens' format)."""

    name = "gluon"
    native_formats: tuple[str, ...] = ("mxnet",)

    def architectures(self) -> tuple[str, ...]:
        from ..models.architectures import names_for

        return names_for(self.name)

    def train(
        self,
        config: TrainConfig,
        *,
        data: str | Path,
        out: str | Path,
        resume: bool = True,
        progress: bool = True,
        **unsupported: Any,
    ) -> RunDir:
        from ..rundir import RunDir

        if unsupported:
            raise ConfigError(
                f"the Gluon trainer does not accept {', '.join(sorted(unsupported))} "
                "(injecting a built model is a torch-trainer feature)"
            )
        config = portable_weights(config.replace(framework=self.name), Path(out))
        # absolute paths: the worker is long-lived and keeps the cwd it started with
        root = _run("train", config=config.to_dict(), data=_abs(data), out=_abs(out),
                    resume=resume, progress=progress)  # fmt: skip
        return RunDir(root)

    def evaluate(self, run: RunDir, *, data: str | Path, split: str = "test") -> dict[str, Any]:
        return dict(_run("evaluate", run=_abs(run.root), data=_abs(data), split=split))

    def predictor(self, run: RunDir) -> tuple[Any, ModelCard, str]:
        from ..runtime.backends import open_runtime

        card = run.load_card()
        rt = open_runtime(run.symbol, backend="mxnet", card=card)
        return rt.infer, card, f"gluon run {run.root} (mxnet)"

    def run_source(self, run: RunDir, card: ModelCard) -> ExportSource:
        from .._io import sha256_file
        from ..errors import CheckpointError
        from ..export.pipeline import ExportSource

        if not (run.symbol.is_file() and run.params.is_file()):
            raise CheckpointError(f"{run.root}: gluon run without model-symbol.json/-0000.params")
        card = card.replace(source_sha256=card.source_sha256 or sha256_file(run.params))
        return ExportSource(card=card, description=f"gluon run {run.root}", native=run.root,
                            run=run.root, framework=self.name)  # fmt: skip

    def checkpoint_source(
        self,
        checkpoint: Path,
        arch: str,
        names: tuple[str, ...],
        *,
        image_size: int,
        workdir: Any = None,
    ) -> ExportSource:
        """Gluon ``.params`` trained elsewhere, rebuilt as ``arch`` and written as a run."""
        from ..card import ModelCard
        from ..export.pipeline import ExportSource

        run = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="ce-gluon-"))
        run.mkdir(parents=True, exist_ok=True)
        card = _run("checkpoint_run", checkpoint=str(Path(checkpoint).resolve()), arch=arch,
                    names=list(names), image_size=image_size, workdir=str(run.resolve()))  # fmt: skip
        return ExportSource(card=ModelCard.from_dict(card), framework=self.name,
                            description=f"gluon checkpoint {checkpoint}", native=run)  # fmt: skip

    def produce(
        self,
        fmt: ExportFormat,
        src: ExportSource,
        dst: Path,
        *,
        opset: int,
        dynamic_batch: bool,
    ) -> Path:
        """ONNX by MXNet's own exporter; the run's symbol/params are the MXNet artifact."""
        if src.native is None:
            raise ExportError(f"{src.description}: a Gluon source needs its symbol/params folder")
        if fmt.name in self.native_formats:
            from .gluon_export import export_run_symbol  # copies files: no mxnet needed

            return export_run_symbol(src.native, dst.parent)[0]
        if fmt.made_from == "model" and fmt.precision == "fp32" and fmt.suffix == ".onnx":
            path = _run("to_onnx", run=str(Path(src.native).resolve()), dst=str(dst.resolve()),
                        card=src.card.to_dict(), opset=opset, dynamic_batch=dynamic_batch)  # fmt: skip
            return Path(path)
        raise ExportError(
            f"format {fmt.name!r} is made from a torch model; a Gluon run exports to ONNX and "
            "the formats converted from it (e.g. --to onnx,openvino)"
        )

    def eager_baseline(self, run: RunDir, *, threads: int) -> tuple[Any, float] | None:
        return None  # the run is itself the "mxnet" row of a benchmark


GLUON = GluonFramework()
