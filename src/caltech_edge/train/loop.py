"""The epoch loop: train one epoch, validate, keep the best epoch, stop early, checkpoint.

Deliberately thin (the benchmark holds it to <= 5% overhead over a hand-written loop):
one forward/backward per batch, the learning rate set from the fractional epoch, counts
kept as tensors and read once per epoch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import TrainConfig
from . import distributed
from .common import FitState, score_of, update_state  # noqa: F401 - re-exported
from .metrics import Accumulator
from .schedules import set_lr

AutocastFactory = Callable[[], contextlib.AbstractContextManager]


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    epoch: int,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    config: TrainConfig,
    set_mode: Callable[[], None],
    autocast: AutocastFactory,
    ctx: distributed.DistContext,
    channels_last: bool = False,
    scaler: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """One pass over ``batches``; returns loss, top-1, images/s (summed over ranks)."""
    set_mode()
    loss_sum = 0.0
    correct = 0
    seen = 0
    start = time.perf_counter()
    lr = config.learning_rate
    bar = tqdm(
        total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not progress
    )
    try:
        for step, (images, labels) in enumerate(batches):
            lr = set_lr(optimizer, epoch + step / max(steps, 1), config)
            if channels_last and images.dim() == 4:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast():
                logits = model(images)
            loss = criterion(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:  # pragma: no cover - fp16 on CUDA only
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            n = labels.shape[0]
            seen += n
            # Plain Python numbers: a few microseconds per batch (argmax builds no graph).
            batch_loss = loss.item()
            loss_sum += batch_loss * n
            correct += int((logits.argmax(1) == labels).sum())
            if progress:
                rate = seen * ctx.world_size / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{batch_loss:.3f}", img_s=f"{rate:.0f}", refresh=False)
                bar.update(1)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    totals = distributed.all_reduce_sum(
        ctx, np.array([loss_sum, correct, seen, seconds], dtype=np.float64)
    )
    images = int(totals[2])
    return {
        "train_loss": float(totals[0]) / max(images, 1),
        "train_top1": float(totals[1]) / max(images, 1),
        "train_images": images,
        "lr": float(lr),
        "seconds": float(seconds),
        "images_per_s": images / max(float(seconds), 1e-9),
    }


@torch.no_grad()
def evaluate_batches(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    num_classes: int,
    top_k: int = 5,
    criterion: nn.Module | None = None,
    autocast: AutocastFactory = contextlib.nullcontext,
    channels_last: bool = False,
) -> Accumulator:
    """Logits of ``model`` (eval mode) over ``batches`` into an :class:`Accumulator`."""
    was_training = model.training
    model.eval()
    acc = Accumulator(num_classes, top_k=top_k)
    try:
        for images, labels in batches:
            if channels_last and images.dim() == 4:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast():
                logits = model(images)
            logits = logits.float()
            loss = criterion(logits, labels).item() if criterion is not None else None
            acc.update(logits.numpy(), labels.numpy(), loss)
    finally:
        model.train(was_training)
    return acc
