"""Structured channel pruning with Torch-Pruning's dependency graph.

The dependency graph follows every tensor a channel touches (the next conv's inputs,
BatchNorm statistics, residual additions, SqueezeNet's concatenations, depthwise groups)
so removing a channel keeps the network consistent. The layers named in ``ignore`` (the
classifier) keep their outputs: the model still predicts the same classes.
"""

from __future__ import annotations

import torch
from torch import nn

from .._registry import require
from ..errors import ConfigError

IMPORTANCES = ("l2", "l1", "bn_scale")


def _importance(tp, name: str):
    if name == "l2":
        return tp.importance.MagnitudeImportance(p=2)
    if name == "l1":
        return tp.importance.MagnitudeImportance(p=1)
    if name == "bn_scale":
        return tp.importance.BNScaleImportance()
    raise ConfigError(f"unknown channel importance {name!r}; choose one of {IMPORTANCES}")


class ChannelPruner:
    """Removes ``amount`` of each prunable layer's output channels over ``steps`` steps.

    Call :meth:`step` ``steps`` times, fine-tuning in between (iterative pruning loses
    less accuracy than one big cut because the network adapts to each smaller one).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        amount: float,
        image_size: int = 224,
        steps: int = 1,
        ignore: tuple[str, ...] = (),
        importance: str = "l2",
        round_to: int | None = None,
    ) -> None:
        tp = require("torch_pruning", "torch", "structured pruning")
        if not 0.0 < float(amount) < 1.0:
            raise ConfigError(f"pruning amount must be in (0, 1), got {amount}")
        if int(steps) < 1:
            raise ConfigError(f"pruning steps must be >= 1, got {steps}")
        ignored = [model.get_submodule(name) for name in ignore if name]
        was_training = model.training
        model.eval()
        self.model = model
        self.steps_total = int(steps)
        self.steps_done = 0
        self._pruner = tp.pruner.MetaPruner(
            model,
            torch.zeros(1, 3, image_size, image_size),
            importance=_importance(tp, importance),
            pruning_ratio=float(amount),
            iterative_steps=int(steps),
            ignored_layers=ignored,
            round_to=round_to,  # e.g. 8: channel counts stay multiples of the SIMD width
        )
        model.train(was_training)

    def step(self) -> None:
        if self.steps_done >= self.steps_total:
            raise ConfigError(f"all {self.steps_total} pruning steps are already done")
        with torch.no_grad():
            self._pruner.step()
        self.steps_done += 1
