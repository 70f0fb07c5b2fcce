"""The PyTorch member of the framework axis (torch is imported only when a method runs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..card import ModelCard
    from ..config import TrainConfig
    from ..export.formats import ExportFormat
    from ..export.pipeline import ExportSource
    from ..rundir import RunDir


class TorchFramework:
    """torchvision models trained in-process; every export format starts from the module."""

    name = "torch"
    native_formats: tuple[str, ...] = ()
    #: train() takes ``on_epoch=`` (each epoch's metrics; the tuner's pruning hook)
    epoch_callback = True

    def architectures(self) -> tuple[str, ...]:
        from ..models.architectures import names_for

        return names_for(self.name)

    def train(
        self, config: TrainConfig, *, data: str | Path, out: str | Path, **kwargs: Any
    ) -> RunDir:
        from .torch import train

        return train(config, data=data, out=out, **kwargs)

    def evaluate(self, run: RunDir, *, data: str | Path, split: str = "test") -> dict[str, Any]:
        from .torch import evaluate

        return evaluate(run, data=data, split=split)

    def predictor(self, run: RunDir) -> tuple[Any, ModelCard, str]:
        from ..export.verify import torch_predictor
        from ..rundir import load_torch_model

        model, card = load_torch_model(run)
        return torch_predictor(model), card, f"torch run {run.root}"

    def run_source(self, run: RunDir, card: ModelCard) -> ExportSource:
        from .._io import sha256_file
        from ..export.pipeline import ExportSource
        from ..rundir import load_torch_model

        model, card = load_torch_model(run)
        card = card.replace(source_sha256=sha256_file(run.weights))
        return ExportSource(
            card=card, description=f"torch run {run.root}", model=model, run=run.root
        )

    def checkpoint_source(
        self,
        checkpoint: Path,
        arch: str,
        names: tuple[str, ...],
        *,
        image_size: int,
        workdir: Any = None,
    ) -> ExportSource:
        """A torchvision state dict trained elsewhere, checked against ``arch`` + classes."""
        from .._io import sha256_file
        from ..card import ModelCard
        from ..errors import CheckpointError
        from ..export.pipeline import ExportSource, state_mismatch
        from ..models.torchvision_zoo import (
            adapt_state_dict,
            arch_preprocess,
            create_model,
            load_state_dict_file,
        )

        model = create_model(arch, len(names), weights=None)  # unknown arch -> did-you-mean
        state = load_state_dict_file(checkpoint)  # missing/corrupt -> CheckpointError
        state = adapt_state_dict(arch, state, model, source=str(checkpoint))  # published keys
        problems = state_mismatch(model.state_dict(), state)
        if problems:
            raise CheckpointError(
                f"{checkpoint}: does not fit {arch} with {len(names)} classes ({problems}). "
                "Check --arch and that the classes file lists one name per output of the "
                "checkpoint."
            )
        model.load_state_dict(state, strict=True)
        card = ModelCard(
            arch=arch,
            class_names=names,
            preprocess=arch_preprocess(arch, image_size),  # the weights' own preprocessing
            framework=self.name,
            format="checkpoint",
            source_sha256=sha256_file(checkpoint),
        )
        return ExportSource(card=card, description=f"checkpoint {checkpoint}", model=model.eval())

    def produce(
        self,
        fmt: ExportFormat,
        src: ExportSource,
        dst: Path,
        *,
        opset: int,
        dynamic_batch: bool,
        **extra: Any,
    ) -> Path:
        """Rows made from the model: ``producer(module, card, path, **options)``; ``extra``:
        ``calibration=`` for INT8 rows."""
        return Path(
            fmt.load_producer()(
                src.model, src.card, dst, opset=opset, dynamic_batch=dynamic_batch,
                **fmt.options, **extra,
            )
        )  # fmt: skip

    def eager_baseline(self, run: RunDir, *, threads: int) -> tuple[Any, float] | None:
        import torch

        from ..rundir import load_torch_model

        net, _ = load_torch_model(run)
        torch.set_num_threads(threads)  # after any mxnet import, which drops it to 1

        def eager(x: Any) -> Any:
            with torch.inference_mode():
                return net(torch.from_numpy(x)).numpy()

        return eager, run.weights.stat().st_size / 1e6


TORCH = TorchFramework()
