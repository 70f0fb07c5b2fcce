"""MXNet Gluon trainer: the same config, strategies and run directory as the torch trainer.

``train(config, data=..., out=...)`` fine-tunes a Gluon model zoo network (ResNet v1/v2,
SqueezeNet 1.1, MobileNet) and writes the run directory of :mod:`caltech_edge.rundir`
with ``card.framework == "gluon"``: the best weights as ``model-symbol.json`` +
``model-0000.params`` (hybridized and exported, what the DeepLens MXNet runtime loads),
card.json, config.json, classes.txt, split.json, metrics.json and plots. Data comes from
the numpy loader (no torch); metrics and plots are the torch trainer's numpy helpers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_json, sha256_file
from ..card import ModelCard
from ..config import TrainConfig
from ..data.transforms import PreprocessSpec
from ..errors import CheckpointError, ConfigError
from ..rundir import RunDir
from ..train.common import (
    checkpoint_due,
    evaluation_indices,
    update_state,
)
from . import gluon_loop as loop
from ._mxnet_compat import import_mxnet
from .gluon_setup import Fit, Model, Setup, build_model, gluon_config, open_data, prepare, start_fit


def _evaluate_net(net: Any, ds: Any, indices: Any, spec: PreprocessSpec, config: TrainConfig):
    from ..data.loader import iter_batches
    from ..train.metrics import Accumulator

    mx = import_mxnet()
    acc = Accumulator(len(ds.classes), top_k=min(config.top_k, len(ds.classes)))
    for x, y in iter_batches(ds, indices, spec, batch_size=max(config.batch_size, 32)):
        logits = net(mx.nd.array(x)).asnumpy()
        acc.update(logits, y, loss=_ce(logits, y))
    return acc


def _ce(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def _class_weights(ds: Any, indices: Any, config: TrainConfig) -> Any:
    if not config.weighted_loss:
        return None
    mx = import_mxnet()
    counts = np.bincount([ds.targets[i] for i in indices], minlength=len(ds.classes))
    weights = len(indices) / (len(ds.classes) * np.maximum(counts, 1))
    return mx.nd.array(weights.astype(np.float32))


def train(
    config: TrainConfig,
    *,
    data: str | Path,
    out: str | Path,
    resume: bool = True,
    progress: bool = True,
    **unsupported: Any,
) -> RunDir:
    """Fine-tune a Gluon network per ``config`` on the dataset at ``data``; write run ``out``.

    ``resume=True`` continues from ``out/checkpoints/last-gluon.npz`` when it exists (same
    result as an uninterrupted run). Returns the :class:`RunDir`.
    """
    config = gluon_config(config, unsupported)
    import_mxnet()  # fail early (missing mxnet), before any file is written
    setup = prepare(config, data, out, resume)
    model = build_model(setup)
    fit = start_fit(setup, model, resume)
    train_idx, val_idx = setup.split.subset("train"), setup.split.subset("val")
    if not train_idx:
        raise ConfigError(f"{data}: the split has no training images")
    _train_epochs(setup, model, fit, train_idx, val_idx, progress)
    if fit.best is not None:  # keep the best epoch's weights (validation, else training metric)
        loop.restore(model.net, fit.best)
    return _finish(setup.run, model.net, setup.ds, setup.split, setup.spec, config, setup.arch,
                   fit.state, fit.seconds, setup.notes)  # fmt: skip


def _train_epochs(setup: Setup, model: Model, fit: Fit, train_idx: list[int],
                  val_idx: list[int], progress: bool) -> None:  # fmt: skip
    """Train from ``fit.state.epoch`` until ``config.epochs`` or early stopping.

    Each epoch re-seeds from (seed, epoch) and ends with a checkpoint, so a resumed run
    computes the same epochs as an uninterrupted one.
    """
    from ..train.metrics import Accumulator

    config, net = setup.config, model.net
    num_classes = len(setup.ds.classes)
    steps = max(1, -(-len(train_idx) // config.batch_size))
    weights = _class_weights(setup.ds, train_idx, config)
    cache = (
        _cache_features(net, model.plan, setup.ds, train_idx, setup.spec, config)
        if config.cache_features
        else None
    )
    bar = _progress(progress, config.epochs * len(train_idx), fit.state.epoch * len(train_idx))
    while fit.state.epoch < config.epochs and not fit.state.stopped_early:
        epoch = fit.state.epoch
        loop.seed_epoch(config.seed, epoch)
        started = time.perf_counter()
        batches = _epoch_batches(setup, cache, train_idx, epoch)
        acc = Accumulator(num_classes, top_k=min(config.top_k, num_classes))
        _fit_epoch(net, model.trainer, model.plan, batches, acc, config=config, epoch=epoch,
                   steps=steps, cached=cache is not None, weights=weights, bar=bar)  # fmt: skip
        fit.seconds += time.perf_counter() - started
        record = _end_epoch(setup, model, fit, epoch, acc, val_idx)
        if bar is not None:
            bar.set_postfix(epoch=epoch + 1, loss=f"{record['train_loss']:.3f}")
    if bar is not None:
        bar.close()


def _epoch_batches(setup: Setup, cache: Any, train_idx: list[int], epoch: int) -> Any:
    """An epoch's training batches: cached backbone features, else augmented images.

    Both orders are functions of (seed, epoch), which is what makes resume exact.
    """
    from ..data.loader import iter_batches

    config = setup.config
    if cache is not None:
        return _cached_batches(cache, config, epoch)
    return iter_batches(
        setup.ds, train_idx, setup.spec, batch_size=config.batch_size, shuffle=True,
        seed=config.seed, epoch=epoch, augment=setup.augment,
    )  # fmt: skip


def _end_epoch(setup: Setup, model: Model, fit: Fit, epoch: int, acc: Any,
               val_idx: list[int]) -> dict[str, Any]:  # fmt: skip
    """Validate, record the epoch, keep the best weights and checkpoint; returns the record.

    Runs after ``fit.seconds`` is updated, so validation is not counted as training time.
    """
    config, net = setup.config, model.net
    val = _evaluate_net(net, setup.ds, val_idx, setup.spec, config).result() if val_idx else None
    record = _record(epoch, model.trainer, acc.result(), val)
    if update_state(fit.state, record, config):  # the shared best-epoch/early-stopping rule
        fit.best = loop.snapshot(net)
    state = {**fit.state.to_dict(), "train_seconds": fit.seconds}
    _save(setup.run, setup.ckpt, net, model.trainer, config, state, fit.best)
    return record


def _record(epoch: int, trainer: Any, res: dict, val: dict | None) -> dict[str, Any]:
    """The history entry of an epoch (the torch trainer's keys)."""
    record: dict[str, Any] = {"epoch": epoch + 1, "lr": trainer.learning_rate}
    record.update(train_loss=res.get("loss"), train_top1=res["top1"])
    if val is not None:
        record.update(val_loss=val.get("loss"), val_top1=val["top1"], val_top5=val["top5"])
    return record


def _save(run: RunDir, ckpt: Path, net: Any, trainer: Any, config: TrainConfig,
          state: dict[str, Any], best: Any) -> None:  # fmt: skip
    """The resume checkpoint every epoch, plus ``epoch-NNNN.params`` at the shared cadence."""
    epoch = int(state["epoch"])
    if checkpoint_due(config, epoch):
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        net.save_parameters(str(run.checkpoints / f"epoch-{epoch:04d}.params"))
    loop.save_checkpoint(ckpt, net=net, trainer=trainer, state=state, best=best)


def _fit_epoch(net, trainer, plan, batches, acc, *, config, epoch, steps, cached, weights, bar):
    """One pass over ``batches`` (images, or cached backbone features for the head)."""
    from ..train.schedules import lr_factor

    mx = import_mxnet()
    for step, (x, y) in enumerate(batches):
        trainer.set_learning_rate(config.learning_rate * lr_factor(epoch + step / steps, config))
        xb, yb = mx.nd.array(x), mx.nd.array(y, dtype="int32")
        feats = xb if cached else loop.forward_frozen(plan, xb)
        with mx.autograd.record():
            logits = net.output(feats) if cached else loop.forward_trainable(net, plan, feats)
            loss = loop.smoothed_loss(logits, yb, config, weights)
        loss.backward()
        trainer.step(len(y))
        acc.update(logits.asnumpy(), y, loss=float(loss.mean().asscalar()))
        if bar is not None:
            bar.update(len(y))


def _progress(enabled: bool, total: int, initial: int) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="img", desc="gluon train", smoothing=0.1)


def _cache_features(net, plan, ds, indices, spec, config) -> tuple[np.ndarray, np.ndarray]:
    """Head strategy: run the frozen backbone once over the training images (no augmentation)."""
    from ..data.loader import iter_batches

    mx = import_mxnet()
    feats, labels = [], []
    for x, y in iter_batches(ds, indices, spec, batch_size=max(config.batch_size, 32)):
        feats.append(loop.forward_frozen(plan, mx.nd.array(x)).asnumpy())
        labels.append(y)
    return np.concatenate(feats), np.concatenate(labels)


def _cached_batches(cache, config: TrainConfig, epoch: int):
    feats, labels = cache
    order = np.random.default_rng([config.seed, epoch]).permutation(len(labels))
    for start in range(0, len(order), config.batch_size):
        chunk = order[start : start + config.batch_size]
        yield feats[chunk], labels[chunk]


def _finish(run, net, ds, split, spec, config, arch, state, seconds, notes) -> RunDir:
    from ..train.plots import plot_confusion, plot_curves
    from .gluon_export import export_symbol

    export_symbol(net, run.root / "model", image_size=spec.image_size)
    test_idx = split.subset("test")
    test = _evaluate_net(net, ds, test_idx, spec, config).result(ds.classes) if test_idx else None
    card = ModelCard(
        arch=arch,
        class_names=ds.classes,
        preprocess=spec,
        framework="gluon",
        format="mxnet",
        source_sha256=sha256_file(run.params),
        dataset=ds.name,
        metrics={
            "top1": test and test["top1"],
            "top5": test and test["top5"],
            "test_images": test and test["images"],
            "best_epoch": state.best_epoch,
        },
        extra={"strategy": config.strategy.value, "weights": str(config.weights)},
    )
    card.save(run.card)
    history = state.history
    selection = (
        "best epoch chosen on validation"
        if history and history[0].get("val_top1") is not None
        else "no validation split: best epoch chosen on training metrics (set val_per_class)"
    )
    metrics = {
        "framework": "gluon",
        "arch": arch,
        "history": history,
        "epochs_completed": state.epoch,
        "best_epoch": state.best_epoch,
        "selection": selection,
        "stopped_early": state.stopped_early,
        "split_sizes": split.sizes,
        "test": test,
        "wall_seconds": round(seconds, 3),
        "images_per_second": round(state.epoch * len(split.train) / max(seconds, 1e-9), 1),
        "notes": notes,
    }
    atomic_write_json(run.metrics, metrics)
    run.plots.mkdir(parents=True, exist_ok=True)
    if state.history:
        plot_curves(state.history, run.plots / "curves.png")
    if test:
        plot_confusion(test["confusion"], ds.classes, run.plots / "confusion.png")
    return run


def load_gluon_model(run: str | Path | RunDir) -> tuple[Any, ModelCard]:
    """The trained network of a Gluon run as a ``SymbolBlock`` (CPU) and its card."""
    mx = import_mxnet()
    run = run if isinstance(run, RunDir) else RunDir(run)
    card = run.load_card()
    if card.framework != "gluon":
        raise CheckpointError(
            f"{run.root}: this run was trained with {card.framework!r}, not gluon; "
            "use caltech_edge.rundir.load_torch_model"
        )
    if not (run.symbol.is_file() and run.params.is_file()):
        raise CheckpointError(
            f"{run.root}: no model-symbol.json/model-0000.params (did training finish?)"
        )
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = mx.gluon.nn.SymbolBlock.imports(
                str(run.symbol), ["data"], str(run.params), ctx=mx.cpu()
            )
    except Exception as exc:  # MXNetError for malformed files
        raise CheckpointError(f"{run.root}: cannot load symbol/params ({exc})") from exc
    return net, card


def evaluate(run: str | Path | RunDir, *, data: str | Path, split: str = "test") -> dict[str, Any]:
    """Top-1/top-5/per-class/confusion of a Gluon run on a subset of its split."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    net, card = load_gluon_model(run)
    config = TrainConfig.from_file(run.config) if run.config.is_file() else TrainConfig()
    ds = open_data(data, config)
    if tuple(ds.classes) != tuple(card.class_names):
        raise ConfigError(f"{data}: its classes differ from the run's classes.txt ({run.classes})")
    indices = evaluation_indices(run, ds, split)
    result = _evaluate_net(net, ds, indices, card.preprocess, config).result(card.class_names)
    result["split"] = split
    return result


__all__ = ["evaluate", "load_gluon_model", "train"]
