"""What one PyTorch training run is set up with, and what its epochs train on.

Split out of :mod:`caltech_edge.frameworks.torch` so that the trainer reads as its steps:
:class:`Fit` holds what the run set up once; :func:`cached_inputs` (head-only training on
the frozen backbone's features, computed once and cached) and :func:`image_inputs` (decoded,
augmented images) give the same :class:`Inputs` to the epoch loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..rundir import RunDir
from ..train import amp, distributed
from ..train import data as tdata
from ..train.features import cached_features, extract_features, split_model
from ..train.strategy import set_train_mode


class FloatHead(nn.Module):
    """Feeds cached (possibly float16) features to the head in float32."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.float())


@dataclass
class Fit:
    """What one training run set up once, shared by the steps of :func:`_train`."""

    config: TrainConfig
    data: Path
    run: RunDir
    ctx: distributed.DistContext
    dataset: Any
    split: Any
    num_classes: int
    model: nn.Module
    plan: Any
    precision: amp.Precision
    autocast: Callable[[], Any]
    progress: bool
    started: float


@dataclass
class Inputs:
    """What the epochs train and evaluate on: images, or the frozen backbone's cached features."""

    train_module: nn.Module
    eval_module: nn.Module
    train_ds: Any
    val_batches: Any
    set_mode: Callable[[], None]
    test: Callable[[], tuple[nn.Module, Any]]  # (module, batches) for the test split


def cached_inputs(fit: Fit) -> Inputs:
    """Head-only training on the frozen backbone's features, computed once and cached."""
    config, bs = fit.config, fit.config.batch_size
    backbone, head = split_model(fit.model, config.arch)
    feats = {}
    for name in ("train", "val", "test"):
        indices = fit.split.subset(name)
        if not indices:
            continue
        ds = tdata.torch_dataset(config, fit.dataset, indices, train=False)
        key = {
            "data": str(fit.data.resolve()),
            "indices": list(indices),
            "preprocess": tdata.preprocess_spec(config),
            "arch": config.arch,
            "precision": fit.precision.value,
        }
        feats[name] = cached_features(
            backbone,
            key,
            functools.partial(
                extract_features,
                backbone,
                tdata.unshuffled(ds, batch_size=bs, num_workers=config.num_workers),
                total=len(indices),
                autocast=fit.autocast,
                channels_last=config.channels_last,
                progress=fit.progress,
                desc=f"{name} features",
            ),
        )
    module: nn.Module = FloatHead(head)
    val = feats.get("val")

    def set_mode() -> None:
        head.train()

    return Inputs(
        train_module=module,
        eval_module=module,
        train_ds=tdata.tensor_dataset(*feats["train"]),
        val_batches=tdata.unshuffled(tdata.tensor_dataset(*val), batch_size=bs) if val else None,
        set_mode=set_mode,
        # the frozen backbone's test features are cached too
        test=lambda: (
            module,
            tdata.unshuffled(tdata.tensor_dataset(*feats["test"]), batch_size=bs),
        ),
    )


def image_inputs(fit: Fit) -> Inputs:
    """Training on decoded, augmented images (any strategy)."""
    config, model = fit.config, fit.model
    bs, workers = config.batch_size, config.num_workers

    def batches(name: str, *, train: bool) -> Any:
        ds = tdata.torch_dataset(config, fit.dataset, fit.split.subset(name), train=train)
        return tdata.unshuffled(ds, batch_size=bs, num_workers=workers)

    return Inputs(
        train_module=model,
        eval_module=model,
        train_ds=tdata.torch_dataset(config, fit.dataset, fit.split.subset("train"), train=True),
        val_batches=batches("val", train=False) if fit.split.val else None,
        set_mode=lambda: set_train_mode(model, fit.plan),
        test=lambda: (model, batches("test", train=False)),
    )
