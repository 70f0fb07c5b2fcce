"""Evaluate a finished torch run on a subset of its split (or any dataset with its classes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..data.datasets import open_dataset
from ..errors import DatasetError
from ..rundir import RunDir, load_torch_model
from .common import evaluation_indices
from .data import unshuffled
from .loop import evaluate_batches


def evaluate_torch_run(
    run: RunDir, *, data: str | Path, split: str = "test", batch_size: int = 64
) -> dict[str, Any]:
    """top1, top5, images, per_class, confusion of ``run``'s best weights on ``split``.

    ``split`` is ``train``/``val``/``test`` of the run's saved split, or ``all`` for every
    image of ``data`` (e.g. a new dataset with the same classes).
    """
    from ..data.torchdata import TorchImageDataset

    model, card = load_torch_model(run)
    drop_clutter = False
    if run.config.is_file():
        drop_clutter = bool(json.loads(run.config.read_text()).get("drop_clutter", False))
    dataset = open_dataset(data, drop_clutter=drop_clutter)
    if tuple(dataset.classes) != tuple(card.class_names):
        raise DatasetError(
            f"{dataset.root}: its classes ({len(dataset.classes)}) are not the classes this "
            f"model was trained on ({card.num_classes}, see {run.classes}); evaluate on the "
            "training dataset or one with the same class folders"
        )
    indices = evaluation_indices(run, dataset, split)
    torch_ds = TorchImageDataset(dataset, indices, card.preprocess)
    acc = evaluate_batches(
        model,
        unshuffled(torch_ds, batch_size=batch_size),
        num_classes=card.num_classes,
        top_k=5,
        criterion=torch.nn.CrossEntropyLoss(),
    )
    result = acc.result(card.class_names)
    result.update(split=split, run=str(run.root), data=str(dataset.root), arch=card.arch)
    return result
