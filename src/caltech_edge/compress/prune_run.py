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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Plan:
    """:func:`prune_run`'s arguments in one object, so its step helpers need not take eleven."""

    source: RunDir
    out: RunDir
    amount: float
    structured: bool
    steps: int
    finetune_epochs: int
    data: str | Path | None
    learning_rate: float | None
    importance: str
    round_to: int | None
    progress: bool


def _cut(model: nn.Module, ratio: float, plan: _Plan, image_size: int, head: str) -> None:
    """One pruning step, in place; the classifier ``head`` is never cut.

    Structured pruning removes ``ratio`` of the *current* channels (see
    :func:`step_ratios`); unstructured pruning is one global magnitude cut of ``amount``.
    """
    if plan.structured:
        ChannelPruner(
            model,
            amount=ratio,
            image_size=image_size,
            ignore=(head,),
            importance=plan.importance,
            round_to=plan.round_to,
        ).step()
    else:
        prune_unstructured(model, amount=plan.amount, exclude=(head,))


def _pruned_record(plan: _Plan) -> dict[str, Any]:
    """The card's ``extra["pruned"]``: tells ``load_torch_model`` to resize the architecture."""
    return {
        "structured": bool(plan.structured),
        "amount": float(plan.amount),
        "steps": int(plan.steps),
        "round_to": plan.round_to,
        "from_sha256": sha256_file(plan.source.weights),
    }


def _finetune_step(
    model: nn.Module, card: ModelCard, plan: _Plan, step: int
) -> tuple[nn.Module, ModelCard]:
    """Fine-tune after cut ``step`` (0-based).

    The last fine-tune trains straight into ``out`` (its config and split are kept there);
    earlier ones get their own ``out/stepN`` run directories.
    """
    last = step == int(plan.steps) - 1
    step_dir = plan.out.root if last else plan.out.root / f"step{step + 1}"
    return _finetune(
        model,
        card,
        plan.source,
        data=plan.data,
        out=step_dir,
        epochs=plan.finetune_epochs,
        learning_rate=plan.learning_rate,
        progress=plan.progress,
    )


def _prune_steps(
    plan: _Plan, model: nn.Module, card: ModelCard, image_size: int, head: str
) -> tuple[nn.Module, ModelCard, list[dict[str, Any]]]:
    """Cut (and fine-tune) step by step; returns the final model, its card and the history.

    A fine-tune's card is the one the trainer saved, so the ``pruned`` record is stamped on
    the final card again: it is what lets the narrower state dict load.
    """
    history: list[dict[str, Any]] = []
    ratios = step_ratios(float(plan.amount), int(plan.steps)) if plan.structured else [plan.amount]
    record = _pruned_record(plan)  # the source weights' hash, read once for every step
    for i, ratio in enumerate(ratios):
        _cut(model, ratio, plan, image_size, head)
        entry: dict[str, Any] = {"step": i + 1, "params": count_parameters(model)}
        pruned_card = card.replace(extra={**card.extra, "pruned": dict(record)})
        if plan.finetune_epochs:
            model, card_after = _finetune_step(model, pruned_card, plan, i)
            entry["finetuned_top1"] = card_after.metrics.get("top1")
            card = card_after
        else:
            card = pruned_card
        history.append(entry)
    if not plan.structured and plan.finetune_epochs:
        prune_unstructured(model, amount=plan.amount, exclude=(head,))  # training refilled zeros
    card = card.replace(extra={**card.extra, "pruned": pruned_card.extra["pruned"]})
    return model, card, history


def _prune_stats(
    plan: _Plan,
    model: nn.Module,
    head: str,
    before: dict[str, int],
    after: dict[str, int],
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    """What ``prune.json`` records: the settings, the sizes before and after, each step."""
    return {
        "source": str(plan.source.root),
        "structured": bool(plan.structured),
        "amount": float(plan.amount),
        "steps": int(plan.steps),
        "finetune_epochs": int(plan.finetune_epochs),
        "sparsity": sparsity(model, exclude=(head,)),
        "before": before,
        "after": after,
        "macs_ratio": before["macs"] / max(1, after["macs"]),
        "params_ratio": before["params"] / max(1, after["params"]),
        "history": history,
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
    plan = _Plan(source, out_run, amount, structured, steps, finetune_epochs, data,
                 learning_rate, importance, round_to, progress)  # fmt: skip
    model, card = load_torch_model(source)
    size = card.preprocess.image_size
    head = arch_info(card.arch).head
    before = _size_stats(model, size, source.weights)
    model, card, history = _prune_steps(plan, model, card, size, head)
    _write_run(model, card, source, out_run)
    after = _size_stats(model, size, out_run.weights)
    atomic_write_json(
        out_run.root / PRUNE_FILE, _prune_stats(plan, model, head, before, after, history)
    )
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
