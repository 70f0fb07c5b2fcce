"""Pruning: global magnitude sparsity and structured channel removal, on torch models.

Two different promises, kept apart on purpose:

* **Unstructured** pruning zeroes the smallest weights (globally, by magnitude) and makes
  the zeros permanent. The tensors keep their shapes, so latency does not change on a CPU;
  only *compressed* size shrinks, which is why :func:`zipped_size` exists.
* **Structured** pruning (:mod:`.prune_structured`) really removes output channels with
  Torch-Pruning's dependency graph: fewer FLOPs, smaller files, lower latency. The saved
  state dict then has narrower tensors than a fresh ``create_model(arch)``;
  :func:`reshape_to_state_dict` resizes a fresh model to them, so a pruned run is still a
  plain ``weights_only=True`` state dict plus ``card.extra["pruned"]``.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError

PRUNABLE = (nn.Conv2d, nn.Linear)


def _check_amount(amount: float) -> float:
    amount = float(amount)
    if not 0.0 < amount < 1.0:
        raise ConfigError(f"pruning amount must be in (0, 1), got {amount}")
    return amount


def reshape_to_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Resize Conv2d / BatchNorm2d / Linear modules of ``model`` in place to ``state``'s shapes.

    Used to reload a structurally pruned model from a plain state dict: build the
    architecture as usual, call this, then ``load_state_dict(state, strict=True)``.
    Depthwise convolutions (groups == in == out) stay depthwise at the new width; other
    grouped convolutions keep their group count.
    """
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        weight = state.get(prefix + "weight")
        if weight is None:
            continue
        if isinstance(module, nn.Conv2d):
            _reshape_conv(module, weight, state.get(prefix + "bias"), name)
        elif isinstance(module, nn.BatchNorm2d):
            _reshape_bn(module, int(weight.shape[0]))
        elif isinstance(module, nn.Linear):
            if weight.dim() != 2:
                raise CheckpointError(f"{name}.weight: expected 2-D, got {tuple(weight.shape)}")
            module.out_features, module.in_features = (int(s) for s in weight.shape)
            module.weight = nn.Parameter(torch.empty(weight.shape, dtype=weight.dtype))
            if module.bias is not None:
                module.bias = nn.Parameter(torch.empty(module.out_features))
    return model


def _reshape_conv(conv: nn.Conv2d, weight: torch.Tensor, bias, name: str) -> None:
    if weight.dim() != 4:
        raise CheckpointError(f"{name}.weight: expected 4-D conv weight, got {weight.shape}")
    out_ch, in_per_group = int(weight.shape[0]), int(weight.shape[1])
    depthwise = conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels
    if depthwise:
        if in_per_group != 1:
            raise CheckpointError(f"{name}: depthwise conv weight must have 1 input per group")
        conv.groups = out_ch
        conv.in_channels = out_ch
    else:
        conv.in_channels = in_per_group * conv.groups
    conv.out_channels = out_ch
    # Contiguous, whatever the saved tensor's strides: a run trained with channels_last
    # saves channels_last weights, and ExecuTorch's XNNPACK lowering fails on such a
    # parameter ("ChannelsLastTaggedReshapePass"); empty_like would have kept them.
    conv.weight = nn.Parameter(torch.empty(weight.shape, dtype=weight.dtype))
    if conv.bias is not None or bias is not None:
        conv.bias = nn.Parameter(torch.empty(out_ch))


def _reshape_bn(bn: nn.BatchNorm2d, features: int) -> None:
    bn.num_features = features
    if bn.affine:
        bn.weight = nn.Parameter(torch.ones(features))
        bn.bias = nn.Parameter(torch.zeros(features))
    if bn.track_running_stats:
        bn.running_mean = torch.zeros(features)
        bn.running_var = torch.ones(features)


def prunable_weights(
    model: nn.Module, *, exclude: tuple[str, ...] = ()
) -> list[tuple[nn.Module, str]]:
    """(module, "weight") pairs of every Conv2d/Linear, minus modules named in ``exclude``."""
    return [
        (m, "weight")
        for name, m in model.named_modules()
        if isinstance(m, PRUNABLE) and name not in exclude
    ]


def prune_unstructured(
    model: nn.Module, *, amount: float, exclude: tuple[str, ...] = ()
) -> dict[str, float]:
    """Zero the ``amount`` fraction of smallest-magnitude conv/linear weights, globally.

    Global (not per layer) so small, sensitive layers keep more of their weights. The mask
    is folded into the weights with ``prune.remove``: the result is a plain model whose
    state dict has exact zeros and no ``weight_orig``/``weight_mask`` entries.
    """
    from torch.nn.utils import prune as tprune

    amount = _check_amount(amount)
    params = prunable_weights(model, exclude=exclude)
    if not params:
        raise ConfigError("no Conv2d/Linear weights to prune in this model")
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=amount)
    for module, attr in params:
        tprune.remove(module, attr)
    return {"sparsity": sparsity(model, exclude=exclude), "amount": amount}


def sparsity(model: nn.Module, *, exclude: tuple[str, ...] = ()) -> float:
    """Fraction of exactly-zero weights among the prunable conv/linear weights."""
    total = zeros = 0
    for module, attr in prunable_weights(model, exclude=exclude):
        w = getattr(module, attr)
        total += w.numel()
        zeros += int((w == 0).sum())
    return zeros / total if total else 0.0


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, image_size: int) -> int:
    """Multiply-accumulates of one forward pass at ``image_size`` (Torch-Pruning's counter)."""
    import torch_pruning as tp

    example = torch.zeros(1, 3, image_size, image_size)
    was_training = model.training
    model.eval()
    try:
        macs, _ = tp.utils.count_ops_and_params(model, example)
    finally:
        model.train(was_training)
    return int(macs)


def zipped_size(path_or_bytes: str | Path | bytes) -> int:
    """Size after DEFLATE level 6 (zip's default; level 9 is 10x slower on sparse tensors
    for 4% less): what sparsity buys when a file is stored or shipped compressed."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr("model", data)
    return len(buf.getvalue())


def state_dict_bytes(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def prune(
    model: nn.Module,
    *,
    amount: float,
    structured: bool = False,
    arch: str | None = None,
    image_size: int = 224,
    steps: int = 1,
    exclude: tuple[str, ...] | None = None,
    round_to: int | None = None,
) -> dict[str, float]:
    """Prune ``model`` in place; returns before/after statistics.

    ``amount``: fraction of weights (unstructured) or of output channels per layer
    (structured; removing half the channels of consecutive layers cuts ~4x of their
    MACs). The classifier (``arch``'s head) is never pruned in structured mode, so the
    model keeps its number of classes; in unstructured mode it is excluded too unless
    ``exclude=()`` is passed. ``steps`` > 1 only makes sense with fine-tuning between
    steps: use :func:`caltech_edge.compress.prune_run.prune_run` for that.
    """
    from ..models.torchvision_zoo import arch_info

    head = arch_info(arch).head if arch else None
    if exclude is None:
        exclude = (head,) if head else ()
    before = {"params": count_parameters(model), "macs": count_macs(model, image_size)}
    if structured:
        from .prune_structured import ChannelPruner

        pruner = ChannelPruner(
            model,
            amount=amount,
            image_size=image_size,
            steps=steps,
            ignore=exclude,
            round_to=round_to,
        )
        for _ in range(steps):
            pruner.step()
        stats: dict[str, float] = {"amount": _check_amount(amount)}
    else:
        stats = prune_unstructured(model, amount=amount, exclude=exclude)
    after = {"params": count_parameters(model), "macs": count_macs(model, image_size)}
    return {
        **stats,
        "structured": bool(structured),
        "params_before": before["params"],
        "params_after": after["params"],
        "macs_before": before["macs"],
        "macs_after": after["macs"],
    }
