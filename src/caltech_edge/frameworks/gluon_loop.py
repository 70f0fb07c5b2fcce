"""The Gluon training machinery: strategy (what trains), optimizer, one epoch, checkpoints.

Frozen parts of the network are run *outside* ``autograd.record`` in inference mode, so
BatchNorm running statistics of a frozen backbone are never updated and its parameters
have ``grad_req='null'``: a head-only run leaves every backbone tensor bit-identical.

Determinism and resume: the data order and augmentation are functions of (seed, epoch)
(see :func:`caltech_edge.data.loader.iter_batches`) and MXNet's RNG is re-seeded from
(seed, epoch) at the start of every epoch, so a run resumed from the checkpoint of epoch
N reproduces what an uninterrupted run computes from epoch N+1 on.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_bytes
from ..config import Optimizer, Strategy, TrainConfig
from ..errors import CheckpointError, ConfigError
from ._mxnet_compat import import_mxnet
from .gluon_models import feature_blocks

CHECKPOINT_NAME = "last-gluon.npz"
CHECKPOINT_VERSION = 2  # 2: the shared FitState (train.common) as the state


@dataclass
class Plan:
    """How the network is split for training: a frozen prefix and a trainable rest."""

    frozen_blocks: list[Any]  # children of net.features run in inference mode
    trainable_blocks: list[Any]  # the remaining feature children (trained), then net.output
    trainable_params: dict[str, Any]  # structural name -> Parameter
    frozen_params: dict[str, Any]


def _is_stage(block: Any) -> bool:
    from mxnet.gluon import nn

    return bool(block.collect_params()) and not isinstance(block, nn.BatchNorm)


def plan_strategy(net: Any, config: TrainConfig) -> Plan:
    """Freeze per ``config.strategy``; trainable backbone params get ``backbone_lr_mult``."""
    blocks = feature_blocks(net)
    stage_positions = [i for i, b in enumerate(blocks) if _is_stage(b)]
    if config.strategy == Strategy.HEAD:
        first = len(blocks)
    elif config.strategy == Strategy.LAST_K:
        k = config.unfreeze_stages
        if k > len(stage_positions):
            raise ConfigError(
                f"unfreeze_stages={k} but this Gluon network has only {len(stage_positions)} "
                "stages with parameters"
            )
        first = stage_positions[len(stage_positions) - k] if k else len(blocks)
    else:
        first = 0
    if config.strategy != Strategy.HEAD and first < len(blocks) and config.backbone_lr_mult == 0:
        first = len(blocks)  # a zero backbone learning rate is a frozen backbone
    frozen_blocks, trainable_blocks = blocks[:first], blocks[first:]
    all_params = dict(net._collect_params_with_prefix())
    trainable_ids = {id(p) for b in trainable_blocks for p in b.collect_params().values()}
    head_ids = {id(p) for p in net.output.collect_params().values()}
    trainable, frozen = {}, {}
    for name, param in all_params.items():
        # BatchNorm running mean/var are not differentiable: they stay grad_req "null" but
        # belong to the trainable part (updated by forward passes in training mode).
        differentiable = getattr(param, "_differentiable", True)
        if id(param) in head_ids or id(param) in trainable_ids:
            param.grad_req = "write" if differentiable else "null"
            param.lr_mult = 1.0 if id(param) in head_ids else float(config.backbone_lr_mult)
            trainable[name] = param
        else:
            param.grad_req = "null"
            frozen[name] = param
    return Plan(frozen_blocks, trainable_blocks, trainable, frozen)


def make_trainer(net: Any, plan: Plan, config: TrainConfig) -> Any:
    mx = import_mxnet()
    params = {k: p for k, p in plan.trainable_params.items() if p.grad_req != "null"}
    if not params:
        raise ConfigError("nothing to train: every parameter is frozen")
    common = {"learning_rate": config.learning_rate, "wd": config.weight_decay}
    if config.optimizer == Optimizer.SGD:
        name, opts = "sgd", {"momentum": config.momentum}
    elif config.optimizer == Optimizer.NAG:
        name, opts = "nag", {"momentum": config.momentum}
    elif config.optimizer == Optimizer.ADAM:
        name = "adam"
        opts = {"beta1": config.beta1, "beta2": config.beta2, "epsilon": config.eps}
    else:
        name, opts = "rmsprop", {"gamma1": config.gamma, "epsilon": config.eps}
    return mx.gluon.Trainer(list(params.values()), name, {**common, **opts}, kvstore=None)


def forward_frozen(plan: Plan, x: Any) -> Any:
    """Run the frozen prefix in inference mode (no graph, BatchNorm statistics untouched)."""
    for block in plan.frozen_blocks:
        x = block(x)
    return x


def forward_trainable(net: Any, plan: Plan, x: Any) -> Any:
    for block in plan.trainable_blocks:
        x = block(x)
    return net.output(x)


def smoothed_loss(logits: Any, labels: Any, config: TrainConfig, class_weights: Any) -> Any:
    """Cross-entropy with label smoothing and optional per-class weights (per sample)."""
    mx = import_mxnet()
    num = logits.shape[1]
    target = mx.nd.one_hot(labels, num)
    if config.label_smoothing:
        target = target * (1.0 - config.label_smoothing) + config.label_smoothing / num
    loss = -(mx.nd.log_softmax(logits, axis=1) * target).sum(axis=1)
    if class_weights is not None:
        loss = loss * mx.nd.take(class_weights, labels)
    return loss


def seed_epoch(seed: int, epoch: int) -> None:
    mx = import_mxnet()
    mx.random.seed(int(seed) * 100_003 + int(epoch))
    np.random.seed((int(seed) * 100_003 + int(epoch)) % (2**32))


# ------------------------------------------------------------------------- checkpoints
def _param_arrays(params: dict[str, Any], tag: str) -> dict[str, np.ndarray]:
    return {f"{tag}:{k}": p.data().asnumpy() for k, p in params.items()}


def save_checkpoint(
    path: str | Path,
    *,
    net: Any,
    trainer: Any,
    state: dict[str, Any],
    best: dict[str, np.ndarray] | None,
) -> Path:
    """One atomic ``.npz``: weights, best weights, optimizer state, JSON state (no pickle)."""
    arrays = _param_arrays(dict(net._collect_params_with_prefix()), "param")
    if best is not None:
        arrays.update({f"best:{k}": v for k, v in best.items()})
    with tempfile.TemporaryDirectory() as tmp:
        trainer.save_states(str(Path(tmp) / "trainer.states"))
        arrays["trainer_states"] = np.frombuffer(
            (Path(tmp) / "trainer.states").read_bytes(), dtype=np.uint8
        )
    payload = {"version": CHECKPOINT_VERSION, **state}
    arrays["state_json"] = np.frombuffer(json.dumps(payload).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(
    path: str | Path, *, net: Any, trainer: Any
) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Restore weights and optimizer from :func:`save_checkpoint`; returns (state, best)."""
    mx = import_mxnet()
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        state = json.loads(arrays.pop("state_json").tobytes().decode())
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{path}: unreadable Gluon checkpoint ({exc}); delete it or pass resume=False"
        ) from exc
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {state.get('version')} not supported")
    own = dict(net._collect_params_with_prefix())
    for key, param in own.items():
        value = arrays.get(f"param:{key}")
        if value is None or tuple(value.shape) != tuple(param.shape):
            raise CheckpointError(
                f"{path}: does not match this network ({key}); it belongs to another run "
                "(use a new --out directory or resume=False)"
            )
        param.set_data(mx.nd.array(value, dtype=value.dtype))
    with tempfile.TemporaryDirectory() as tmp:
        states = Path(tmp) / "trainer.states"
        states.write_bytes(arrays["trainer_states"].tobytes())
        trainer.load_states(str(states))
    best = {k[5:]: v for k, v in arrays.items() if k.startswith("best:")} or None
    return state, best


def snapshot(net: Any) -> dict[str, np.ndarray]:
    return {k: p.data().asnumpy().copy() for k, p in net._collect_params_with_prefix().items()}


def restore(net: Any, arrays: dict[str, np.ndarray]) -> None:
    mx = import_mxnet()
    for key, param in net._collect_params_with_prefix().items():
        param.set_data(mx.nd.array(arrays[key], dtype=arrays[key].dtype))
