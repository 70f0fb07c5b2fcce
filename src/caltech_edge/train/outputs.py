"""What a finished (or checkpointed) torch run writes besides checkpoints: weights,
metrics.json, the model card and the plots. Rank 0 only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import atomic_write_bytes, atomic_write_json, sha256_file
from ..card import ModelCard
from ..rundir import RunDir
from .data import preprocess_spec
from .loop import FitState


def save_state_dict(path: Path, model: nn.Module) -> None:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _selection(state: FitState) -> str:
    if state.history and state.history[0].get("val_top1") is not None:
        return "best epoch chosen on validation"
    return "no validation split: best epoch chosen on training metrics (set val_per_class)"


def write_metrics(run, config, state: FitState, split, *, test, wall: float) -> dict[str, Any]:
    metrics = {
        "history": state.history,
        "epochs_completed": state.epoch,
        "best_epoch": state.best_epoch,
        "selection": _selection(state),
        "stopped_early": state.stopped_early,
        "split_sizes": split.sizes,
        "test": test,
        "wall_seconds": wall,
        "notes": list(config.notes),
    }
    atomic_write_json(run.metrics, metrics)
    return metrics


def write_card(run, config, dataset, given: ModelCard | None, metrics, precision) -> None:
    test = metrics.get("test") or {}
    best = next((h for h in _history(metrics) if h["epoch"] == metrics["best_epoch"]), {})
    summary = {
        "top1": test.get("top1"),
        "top5": test.get("top5"),
        "test_images": test.get("images"),
        "best_epoch": metrics["best_epoch"],
        "val_top1": best.get("val_top1"),
        "train_top1": best.get("train_top1"),
    }
    extra = dict(given.extra) if given is not None else {}
    extra.update(
        strategy=config.strategy.value,
        training_precision=precision.value,
        synthetic_data=bool(getattr(dataset, "synthetic", False)),
        weights=config.weights,
    )
    card = ModelCard(
        arch=config.arch,
        class_names=tuple(dataset.classes),
        preprocess=preprocess_spec(config),
        framework="torch",
        format="checkpoint",
        precision="fp32",
        name=given.name if given is not None else "",
        dataset=dataset.name,
        source_sha256=sha256_file(run.weights),
        metrics={k: v for k, v in summary.items() if v is not None},
        extra=extra,
    )
    card.save(run.card)


def _history(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    return list(metrics.get("history") or [])


def write_plots(run: RunDir, state: FitState, test, class_names) -> None:
    from .plots import plot_confusion, plot_curves

    if state.history:
        plot_curves(state.history, run.plots / "curves.png")
    if test is not None:
        plot_confusion(test["confusion"], class_names, run.plots / "confusion.png")
