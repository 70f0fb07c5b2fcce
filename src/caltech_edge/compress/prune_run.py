"""Prune a training run into a new run directory, optionally fine-tuning in between.

``prune_run(RUN, out=RUN2, amount=0.5, structured=True, steps=2, finetune_epochs=3,
data=ROOT)`` removes channels in ``steps`` equal cuts, fine-tuning after each through
the normal trainer (``caltech_edge.train.train(..., model=pruned, card=card)``), so the
pruned run has the usual layout: ``model.pt`` is a plain state dict with narrower
tensors and ``card.extra["pruned"]`` tells :func:`caltech_edge.rundir.load_torch_model`
to resize the architecture before loading it. ``prune.json`` records the statistics.

Unstructured pruning with fine-tuning re-applies the same global magnitude cut after
the last fine-tune (training refills zeros), so the saved sparsity is exact.
"""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import atomic_write_bytes, atomic_write_json, sha256_file
from ..card import ModelCard, write_class_names
from ..errors import ConfigError
from ..models.torchvision_zoo import arch_info
from ..rundir import RunDir, load_torch_model
from .prune import count_macs, count_parameters, prune_unstructured, sparsity, zipped_size
from .prune_structured import ChannelPruner

log = logging.getLogger(__name__)

PRUNE_FILE = "prune.json"


FINETUNE_LR_FRACTION = 0.1  # default fine-tune lr as a fraction of the source run's


def step_ratios(amount: float, steps: int) -> list[float]:
    """Per-step fractions of the *current* channels that give a linear schedule overall.

    After step i of n, ``1 - amount * i / n`` of the original channels remain.
    """
    keep = [1.0 - amount * i / steps for i in range(steps + 1)]
    return [1.0 - keep[i + 1] / keep[i] for i in range(steps)]


def _finetune(
    model: nn.Module,
    card: ModelCard,
    source: RunDir,
    *,
    data: str | Path,
    out: Path,
    epochs: int,
    learning_rate: float | None,
    progress: bool,
) -> tuple[nn.Module, ModelCard]:
    from ..config import TrainConfig
    from ..train import train

    base = TrainConfig.from_file(source.config) if source.config.is_file() else TrainConfig()
    overrides: dict[str, Any] = {
        "arch": card.arch,
        "weights": "none",
        "epochs": int(epochs),
        "strategy": "full",
        "backbone_lr_mult": 1.0,
        "cache_features": False,
        "image_size": card.preprocess.image_size,
        "resize_size": card.preprocess.resize_size,
        "lr_scheduler_step": (),
        "warmup_epochs": 0.0,
    }
    # A pruned network is already close to a good solution: the training learning rate
    # throws that away (measured on the quickstart: 56% top-1 at the run's lr, 94-96% at a
    # tenth of it), so fine-tuning defaults to a tenth of the run's rate.
    overrides["learning_rate"] = (
        float(learning_rate)
        if learning_rate is not None
        else base.learning_rate * FINETUNE_LR_FRACTION
    )
    if source.split.is_file():
        overrides["split_file"] = str(source.split)
    config = base.replace(**overrides)
    run = train(config, data=data, out=out, model=model, card=card, resume=False, progress=progress)
    return load_torch_model(run)


def _write_run(model: nn.Module, card: ModelCard, source: RunDir, out: RunDir) -> None:
    out.root.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(out.weights, buf.getvalue())
    for name in ("config", "split"):
        src = getattr(source, name)
        if src.is_file() and not getattr(out, name).exists():  # keep a fine-tune's own
            shutil.copyfile(src, getattr(out, name))
    write_class_names(out.classes, card.class_names)
    card.save(out.card)


def _check_arguments(
    source: RunDir,
    out_run: RunDir,
    amount: float,
    steps: int,
    structured: bool,
    finetune: bool,
    data: str | Path | None,
) -> None:
    """Refuse impossible combinations before the model is even loaded."""
    if out_run.root.resolve() == source.root.resolve():
        raise ConfigError(f"{out_run.root}: --out must differ from the source run")
    if not 0.0 < float(amount) < 1.0:
        raise ConfigError(f"amount must be in (0, 1), got {amount}")
    if int(steps) < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    if finetune and data is None:
        raise ConfigError("fine-tuning needs the training data: pass data= (--data ROOT)")
    if not structured and steps > 1:
        raise ConfigError("iterative steps apply to structured pruning; use steps=1")


def _size_stats(model: nn.Module, image_size: int, weights: Path) -> dict[str, int]:
    """Parameters, MACs at ``image_size``, and the weights file's plain and zipped bytes."""
    return {
        "params": count_parameters(model),
        "macs": count_macs(model, image_size),
        "file_bytes": weights.stat().st_size,
        "zipped_bytes": zipped_size(weights),
    }


def prune_run(
    run: str | Path | RunDir,
    *,
    out: str | Path,
    amount: float,
    structured: bool = False,
    steps: int = 1,
    finetune_epochs: int = 0,
    data: str | Path | None = None,
    learning_rate: float | None = None,
    importance: str = "l2",
    round_to: int | None = None,
    progress: bool = True,
) -> RunDir:
    """Prune the torch run ``run`` into ``out``; returns the new :class:`RunDir`."""
    source = run if isinstance(run, RunDir) else RunDir(run)
    out_run = RunDir(out)
    _check_arguments(source, out_run, amount, steps, structured, bool(finetune_epochs), data)
    model, card = load_torch_model(source)
    size = card.preprocess.image_size
    head = arch_info(card.arch).head
    before = _size_stats(model, size, source.weights)
    history: list[dict[str, Any]] = []
    for i, ratio in enumerate(step_ratios(float(amount), int(steps)) if structured else [amount]):
        if structured:
            ChannelPruner(
                model,
                amount=ratio,
                image_size=size,
                ignore=(head,),
                importance=importance,
                round_to=round_to,
            ).step()
        else:
            prune_unstructured(model, amount=amount, exclude=(head,))
        entry: dict[str, Any] = {"step": i + 1, "params": count_parameters(model)}
        pruned_card = card.replace(
            extra={
                **card.extra,
                "pruned": {
                    "structured": bool(structured),
                    "amount": float(amount),
                    "steps": int(steps),
                    "round_to": round_to,
                    "from_sha256": sha256_file(source.weights),
                },
            }
        )
        if finetune_epochs:
            step_dir = out_run.root if i == int(steps) - 1 else out_run.root / f"step{i + 1}"
            model, card_after = _finetune(
                model,
                pruned_card,
                source,
                data=data,
                out=step_dir,
                epochs=finetune_epochs,
                learning_rate=learning_rate,
                progress=progress,
            )
            entry["finetuned_top1"] = card_after.metrics.get("top1")
            card = card_after
        else:
            card = pruned_card
        history.append(entry)
    if not structured and finetune_epochs:
        prune_unstructured(model, amount=amount, exclude=(head,))  # training refilled zeros
    card = card.replace(extra={**card.extra, "pruned": pruned_card.extra["pruned"]})
    _write_run(model, card, source, out_run)
    after = _size_stats(model, size, out_run.weights)
    stats = {
        "source": str(source.root),
        "structured": bool(structured),
        "amount": float(amount),
        "steps": int(steps),
        "finetune_epochs": int(finetune_epochs),
        "sparsity": sparsity(model, exclude=(head,)),
        "before": before,
        "after": after,
        "macs_ratio": before["macs"] / max(1, after["macs"]),
        "params_ratio": before["params"] / max(1, after["params"]),
        "history": history,
    }
    atomic_write_json(out_run.root / PRUNE_FILE, stats)
    log.info(
        "pruned %s -> %s: params %s -> %s, MACs %.3g -> %.3g",
        source.root,
        out_run.root,
        f"{before['params']:,}",
        f"{after['params']:,}",
        before["macs"],
        after["macs"],
    )
    return out_run
