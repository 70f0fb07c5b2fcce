"""Optimizers and learning-rate schedules built from a :class:`TrainConfig`.

The schedule is a pure function of the (fractional) epoch, stepped once per batch, so a
resumed run recomputes exactly the learning rate an uninterrupted run would have used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..config import Optimizer, Scheduler, TrainConfig

if TYPE_CHECKING:  # torch is imported where it is used: the Gluon trainer shares lr_factor
    import torch


def build_optimizer(param_groups: Iterable[dict], config: TrainConfig) -> torch.optim.Optimizer:
    """One optimizer for ``param_groups`` (each with its own ``lr``)."""
    import torch

    groups = [g for g in param_groups if g["params"]]
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen")
    lr, wd = config.learning_rate, config.weight_decay
    if config.optimizer in (Optimizer.SGD, Optimizer.NAG):
        nesterov = config.optimizer == Optimizer.NAG and config.momentum > 0
        return torch.optim.SGD(
            groups, lr=lr, momentum=config.momentum, weight_decay=wd, nesterov=nesterov
        )
    if config.optimizer == Optimizer.ADAM:
        return torch.optim.Adam(
            groups, lr=lr, betas=(config.beta1, config.beta2), eps=config.eps, weight_decay=wd
        )
    if config.optimizer == Optimizer.RMSPROP:
        return torch.optim.RMSprop(
            groups,
            lr=lr,
            alpha=config.gamma,
            eps=config.eps,
            momentum=config.momentum,
            weight_decay=wd,
        )
    raise ValueError(f"unsupported optimizer {config.optimizer!r}")  # pragma: no cover


def lr_factor(epoch: float, config: TrainConfig) -> float:
    """Multiplier of the base learning rate at fractional ``epoch`` (0 = start of training).

    Warmup rises linearly from 0.1 to 1 over ``warmup_epochs``; ``step`` multiplies by
    ``lr_scheduler_factor`` once ``epoch`` reaches each entry of ``lr_scheduler_step``
    (SageMaker's meaning); ``cosine`` decays from 1 to 0 over the epochs after warmup.
    """
    warm = config.warmup_epochs
    factor = 1.0
    if config.scheduler == Scheduler.STEP:
        passed = sum(1 for s in config.lr_scheduler_step if epoch >= s)
        factor = config.lr_scheduler_factor**passed
    elif config.scheduler == Scheduler.COSINE:
        span = max(config.epochs - warm, 1e-9)
        progress = min(max((epoch - warm) / span, 0.0), 1.0)
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    if warm > 0 and epoch < warm:
        factor *= 0.1 + 0.9 * epoch / warm
    return factor


def set_lr(optimizer: torch.optim.Optimizer, epoch: float, config: TrainConfig) -> float:
    """Apply the schedule at ``epoch`` to every group (relative to its ``base_lr``)."""
    factor = lr_factor(epoch, config)
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("base_lr", group["lr"]) * factor
    return config.learning_rate * factor
