"""The run directory: everything later stages need, written by training, read by all.

    RUN/
      card.json           the model card (arch, classes, preprocessing, framework)
      config.json         the resolved training config
      classes.txt         class names, one per line, in output-index order
      split.json          the exact train/val/test split used
      model.pt            best weights (torch state dict, loads with weights_only=True)
      model-symbol.json   \\ Gluon runs: the exported symbol and params instead of model.pt
      model-0000.params   /
      checkpoints/last.pt resume state (model, optimizer, schedule, epoch, RNG)
      metrics.json        per-epoch history and final evaluation
      plots/*.png         training curves, confusion matrix

Any stage can start from these files; nothing needs the process that produced them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .card import ModelCard
from .errors import CheckpointError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    card = property(lambda self: self.root / "card.json")
    config = property(lambda self: self.root / "config.json")
    classes = property(lambda self: self.root / "classes.txt")
    split = property(lambda self: self.root / "split.json")
    weights = property(lambda self: self.root / "model.pt")
    symbol = property(lambda self: self.root / "model-symbol.json")
    params = property(lambda self: self.root / "model-0000.params")
    checkpoints = property(lambda self: self.root / "checkpoints")
    last = property(lambda self: self.root / "checkpoints" / "last.pt")
    metrics = property(lambda self: self.root / "metrics.json")
    plots = property(lambda self: self.root / "plots")

    def load_card(self) -> ModelCard:
        return ModelCard.load(self.card)

    def is_run(self) -> bool:
        return self.card.is_file() and (self.weights.is_file() or self.params.is_file())


def load_torch_model(run: str | Path | RunDir) -> tuple[nn.Module, ModelCard]:
    """Rebuild the trained torch model of a run directory (eval mode, CPU)."""
    from .models.torchvision_zoo import create_model, load_state_dict_file

    run = run if isinstance(run, RunDir) else RunDir(run)
    card = run.load_card()
    if card.framework != "torch":
        raise CheckpointError(
            f"{run.root}: this run was trained with {card.framework!r}, not torch; "
            "use its symbol/params files (caltech_edge.frameworks.gluon)"
        )
    if not run.weights.is_file():
        raise CheckpointError(
            f"{run.weights}: no weights in this run directory (did training finish?)"
        )
    state = load_state_dict_file(run.weights)
    model = create_model(card.arch, card.num_classes, weights=None)
    if card.extra.get("pruned"):
        # Structured pruning changed layer widths: resize modules to the saved tensors first.
        from .compress.prune import reshape_to_state_dict

        reshape_to_state_dict(model, state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{run.weights}: does not match {card.arch} ({exc})") from exc
    return model.eval(), card
