"""Which parameters train, at which learning rate: head only, last-k stages, or all.

Frozen parameters get ``requires_grad=False`` and frozen modules stay in eval mode while
training (BatchNorm statistics are buffers: updating them would change a "frozen"
backbone), so a head-only run leaves every backbone tensor bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..config import Strategy, TrainConfig
from ..errors import ConfigError
from ..models.torchvision_zoo import arch_info


@dataclass(frozen=True)
class Plan:
    param_groups: list[dict]
    frozen_modules: tuple[nn.Module, ...]
    trainable: int  # number of trainable parameters (elements)
    frozen: int


def _head_module_name(arch: str) -> str:
    return arch_info(arch).head


def apply_strategy(model: nn.Module, *, arch: str, config: TrainConfig) -> Plan:
    """Freeze per ``config.strategy`` and return optimizer groups (head lr, backbone lr)."""
    info = arch_info(arch)
    head_prefix = info.head + "."
    stages = info.stages
    if config.strategy == Strategy.HEAD:
        trainable_stages: tuple[str, ...] = ()
    elif config.strategy == Strategy.LAST_K:
        k = config.unfreeze_stages
        if k > len(stages):
            raise ConfigError(
                f"unfreeze_stages={k} but {arch} has only {len(stages)} stages "
                f"({', '.join(stages)})"
            )
        trainable_stages = stages[len(stages) - k :] if k else ()
    else:
        trainable_stages = None  # everything

    head_params, body_params = [], []
    trainable = frozen = 0
    for name, param in model.named_parameters():
        is_head = name.startswith(head_prefix)
        train_it = (
            is_head
            or trainable_stages is None
            or any(name.startswith(stage + ".") for stage in trainable_stages)
        )
        param.requires_grad_(train_it)
        if train_it:
            (head_params if is_head else body_params).append(param)
            trainable += param.numel()
        else:
            frozen += param.numel()

    frozen_modules = tuple(
        module
        for name, module in model.named_modules()
        if name
        and not name.startswith(head_prefix)
        and name != info.head
        and any(True for _ in module.parameters(recurse=False))
        and not any(p.requires_grad for p in module.parameters(recurse=False))
    )
    groups = [{"params": head_params, "lr": config.learning_rate, "name": "head"}]
    if body_params:
        groups.append(
            {
                "params": body_params,
                "lr": config.learning_rate * config.backbone_lr_mult,
                "name": "backbone",
            }
        )
    return Plan(groups, frozen_modules, trainable, frozen)


def set_train_mode(model: nn.Module, plan: Plan) -> None:
    """``model.train()`` except frozen modules, which stay in eval mode."""
    model.train()
    for module in plan.frozen_modules:
        module.eval()
