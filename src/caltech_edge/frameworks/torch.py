"""The PyTorch trainer: ``train(config, *, data, out, ...) -> RunDir`` and ``evaluate``.

This module only wires the pieces in :mod:`caltech_edge.train` together (data, strategy,
optimizer, loop, checkpoints, outputs); each piece lives in its own small module.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._io import atomic_write_text
from ..card import ModelCard
from ..config import Framework, TrainConfig
from ..errors import CheckpointError, ConfigError, DatasetError
from ..models.torchvision_zoo import create_model, load_state_dict_file
from ..rundir import RunDir
from ..train import amp, distributed
from ..train import data as tdata
from ..train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ..train.loop import FitState, evaluate_batches, train_one_epoch, update_state
from ..train.outputs import save_state_dict, write_card, write_metrics, write_plots
from ..train.schedules import build_optimizer
from ..train.strategy import apply_strategy
from .torch_fit import Fit, Inputs, cached_inputs, image_inputs

log = logging.getLogger(__name__)


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def _class_weights(targets: list[int], num_classes: int) -> torch.Tensor:
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def train(
    config: TrainConfig,
    *,
    data: str | Path,
    out: str | Path,
    model: nn.Module | None = None,
    card: ModelCard | None = None,
    resume: bool = True,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunDir:
    """Fine-tune a torchvision classifier on ``data`` and write the run directory ``out``.

    ``model``/``card`` inject an already-built model (e.g. a pruned one) instead of
    building ``config.arch``; ``card.extra`` (``pruned: true``...) is carried into the run's
    card. With ``resume`` an interrupted run continues from ``checkpoints/last.pt`` and
    ends with the same weights as an uninterrupted one. Under ``torchrun`` every rank
    trains on its shard and rank 0 writes the outputs.

    ``on_epoch(entry)`` is called after each epoch has been checkpointed, with that epoch's
    history entry (``epoch``, ``train_loss``, ``val_top1``, ``val_loss``...), on every rank.
    It lets a caller watch a run or stop it by raising (a tuner reporting to its pruner).
    """
    if config.framework != Framework.TORCH:
        raise ConfigError(f"framework is {config.framework.value!r}; use caltech_edge.train.train")
    ctx = distributed.init()
    try:
        return _train(config, Path(data), RunDir(out), model, card, resume, progress, ctx, on_epoch)
    finally:
        distributed.shutdown(ctx)


def _train(
    config: TrainConfig,
    data: Path,
    run: RunDir,
    model: nn.Module | None,
    given_card: ModelCard | None,
    resume: bool,
    progress: bool,
    ctx: distributed.DistContext,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunDir:
    fit = _setup(config, data, run, model, given_card, progress, ctx, resume=resume)
    config, model = fit.config, fit.model
    weight = _class_weights([fit.dataset.targets[i] for i in fit.split.train], fit.num_classes)
    criterion = nn.CrossEntropyLoss(
        weight=weight.to(_device(ctx)) if config.weighted_loss else None,
        label_smoothing=config.label_smoothing,
    )
    inputs = cached_inputs(fit) if config.cache_features else image_inputs(fit)
    loader = tdata.Loader(
        inputs.train_ds,
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed,
        ctx=ctx,
        num_workers=config.num_workers,
    )
    optimizer = build_optimizer(fit.plan.param_groups, config)
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]
    state = FitState()
    if resume and run.last.is_file():
        state = _restore(run, model, optimizer, ctx)
    wrapped = distributed.wrap(inputs.train_module, ctx)
    scaler = amp.grad_scaler(fit.precision, _device(ctx))

    for epoch in range(state.epoch, config.epochs):
        if state.stopped_early:
            break
        stats = train_one_epoch(
            wrapped,
            loader.epoch(epoch),  # type: ignore[arg-type]
            steps=len(loader),
            epoch=epoch,
            optimizer=optimizer,
            criterion=criterion,
            config=config,
            set_mode=inputs.set_mode,
            autocast=fit.autocast,
            ctx=ctx,
            channels_last=config.channels_last,
            scaler=scaler,
            progress=fit.progress,
        )
        entry: dict[str, Any] = {"epoch": epoch + 1, **stats}
        if inputs.val_batches is not None:
            res = _evaluate(fit, inputs.eval_module, inputs.val_batches).result()
            entry.update(val_loss=res["loss"], val_top1=res["top1"], val_top5=res["top5"])
        is_best = update_state(state, entry, config)
        if ctx.is_main:
            _save_epoch(fit, optimizer, state, entry, is_best=is_best)
        distributed.barrier(ctx)
        if on_epoch is not None:
            on_epoch(dict(entry))

    if state.stopped_early and ctx.is_main:
        log.info("early stopping after epoch %d (best epoch %d)", state.epoch, state.best_epoch)
    model.load_state_dict(load_state_dict_file(run.weights))
    if ctx.is_main:
        _finish(fit, inputs, state, given_card)
    distributed.barrier(ctx)
    return run


def _device(ctx: distributed.DistContext) -> torch.device:
    return (
        torch.device("cuda", ctx.local_rank) if torch.cuda.is_available() else torch.device("cpu")
    )


def _setup(
    config: TrainConfig,
    data: Path,
    run: RunDir,
    model: nn.Module | None,
    given_card: ModelCard | None,
    progress: bool,
    ctx: distributed.DistContext,
    *,
    resume: bool,
) -> Fit:
    """Seed, data, split, model, precision and strategy; rank 0 writes the run's inputs."""
    started = time.perf_counter()
    seed_everything(config.seed, deterministic=config.deterministic)
    dataset = tdata.open_data(config, data)
    num_classes = tdata.num_classes_for(config, dataset)
    split = tdata.resolve_split(config, dataset, run, resume=resume)
    if not split.train:
        raise DatasetError(f"{data}: the split has no training images")
    arch = given_card.arch if given_card is not None else config.arch
    config = config.replace(num_classes=num_classes, arch=arch)
    if model is None:
        model = create_model(arch, num_classes, weights=config.weights)
    model = model.to(_device(ctx))
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    precision = amp.resolve_precision(config.precision, _device(ctx))
    plan = apply_strategy(model, arch=arch, config=config)
    if ctx.is_main:
        run.root.mkdir(parents=True, exist_ok=True)
        split.save(run.split)
        config.save(run.config)
        atomic_write_text(run.classes, "".join(f"{c}\n" for c in dataset.classes))
        log.info(
            "%s: %s, %d classes, split %s, %s trainable / %s frozen parameters, precision %s",
            run.root,
            arch,
            num_classes,
            split.sizes,
            f"{plan.trainable:,}",
            f"{plan.frozen:,}",
            precision.value,
        )
    return Fit(
        config=config,
        data=data,
        run=run,
        ctx=ctx,
        dataset=dataset,
        split=split,
        num_classes=num_classes,
        model=model,
        plan=plan,
        precision=precision,
        autocast=amp.autocast_factory(precision, _device(ctx)),
        progress=progress and ctx.is_main,
        started=started,
    )


def _evaluate(fit: Fit, module: nn.Module, batches: Any) -> Any:
    return evaluate_batches(
        module,
        batches,
        num_classes=fit.num_classes,
        top_k=fit.config.top_k,
        criterion=nn.CrossEntropyLoss(),
        autocast=fit.autocast,
        channels_last=fit.config.channels_last,
    )


def _save_epoch(
    fit: Fit,
    optimizer: torch.optim.Optimizer,
    state: FitState,
    entry: dict[str, Any],
    *,
    is_best: bool,
) -> None:
    """Rank 0 after each epoch: best weights, cadence checkpoints, the resumable state."""
    config, run, model, epoch = fit.config, fit.run, fit.model, entry["epoch"]
    log.info(
        "epoch %d/%d: %s",
        epoch,
        config.epochs,
        ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if isinstance(v, float)),
    )
    if is_best:
        save_state_dict(run.weights, model)
    if config.checkpoint_frequency and epoch % config.checkpoint_frequency == 0:
        save_state_dict(run.checkpoints / f"epoch-{epoch:04d}.pt", model)
    save_checkpoint(
        run.last,
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": state.to_dict(),
            "rng": rng_state(),
            "config": config.to_dict(),
        },
    )
    write_metrics(run, config, state, fit.split, test=None, wall=time.perf_counter() - fit.started)


def _finish(fit: Fit, inputs: Inputs, state: FitState, given_card: ModelCard | None) -> None:
    """Rank 0 at the end: test metrics of the best weights, card and plots."""
    test = None
    if fit.split.test:
        module, batches = inputs.test()
        test = _evaluate(fit, module, batches).result(fit.dataset.classes)
    metrics = write_metrics(
        fit.run, fit.config, state, fit.split, test=test, wall=time.perf_counter() - fit.started
    )
    write_card(fit.run, fit.config, fit.dataset, given_card, metrics, fit.precision)
    write_plots(fit.run, state, test, fit.dataset.classes)


def _restore(run: RunDir, model: nn.Module, optimizer: torch.optim.Optimizer, ctx) -> FitState:
    ckpt = load_checkpoint(run.last)
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{run.last}: does not fit this model/config ({exc}); train into a new --out "
            "directory or pass resume=False (--no-resume) to start over"
        ) from exc
    if ctx.is_main:
        set_rng_state(ckpt["rng"])
    else:  # ranks other than 0 never saved theirs: derive it from (seed, rank, epoch)
        torch.manual_seed(int(ckpt["state"]["epoch"]) * 1000 + ctx.rank)
    state = FitState.from_dict(ckpt["state"])
    log.info("resuming %s after epoch %d", run.root, state.epoch)
    return state


def evaluate(run: RunDir | str | Path, *, data: str | Path, split: str = "test") -> dict[str, Any]:
    from ..train.evaluation import evaluate_torch_run

    run = run if isinstance(run, RunDir) else RunDir(run)
    return evaluate_torch_run(run, data=data, split=split)


__all__ = ["evaluate", "train"]
