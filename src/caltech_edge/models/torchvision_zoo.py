"""torchvision classifiers for transfer learning, with weights that never download silently.

Pretrained weights come from (in order) an explicit file, or torchvision's own cache
(``$TORCH_HOME/hub/checkpoints``) when the file is already there. A missing file is an
error that says where to put it: tests and devices must never reach the network.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from ..data.transforms import PreprocessSpec
from ..errors import CheckpointError, UnknownNameError, WeightsNotFoundError


@dataclass(frozen=True)
class ArchInfo:
    """One architecture. The ``"module:function"`` hooks let a family that torchvision does
    not build (EfficientNet-Lite from timm) plug in without name branches elsewhere."""

    name: str
    head: str  # dotted path of the layer replaced for N classes
    stages: tuple[str, ...]  # top-level blocks from input to output, for last-k unfreezing
    family: str
    builder: str = ""  # fn(arch, num_classes, *, weights) -> nn.Module (default: torchvision)
    preprocess: str = ""  # fn(arch, image_size) -> the weights' PreprocessSpec
    state_adapter: str = ""  # fn(arch, state, model, *, source) -> state in the model's keys
    splitter: str = ""  # fn(model) -> (backbone, head), for cached-feature training


def _hook(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _resnet(name: str) -> ArchInfo:
    return ArchInfo(name, "fc", ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4"), "resnet")


TORCH_ARCHS: dict[str, ArchInfo] = {
    **{f"resnet{d}": _resnet(f"resnet{d}") for d in (18, 34, 50, 101, 152)},
    "squeezenet1_1": ArchInfo(
        "squeezenet1_1", "classifier.1", tuple(f"features.{i}" for i in range(13)), "squeezenet"
    ),
    "mobilenet_v2": ArchInfo(
        "mobilenet_v2", "classifier.1", tuple(f"features.{i}" for i in range(19)), "mobilenet"
    ),
    "mobilenet_v3_small": ArchInfo(
        "mobilenet_v3_small",
        "classifier.3",
        (*tuple(f"features.{i}" for i in range(13)), "classifier.0"),
        "mobilenet",
    ),
}

_LITE = "caltech_edge.models.efficientnet"
for _i in (0, 1, 2):  # EfficientNet-Lite (timm module, package weights): models/efficientnet.py
    TORCH_ARCHS[f"efficientnet_lite{_i}"] = ArchInfo(
        f"efficientnet_lite{_i}",
        "classifier",
        ("conv_stem", "bn1", *(f"blocks.{j}" for j in range(7)), "conv_head", "bn2"),
        "efficientnet_lite",
        builder=f"{_LITE}:create_efficientnet",
        preprocess=f"{_LITE}:weights_preprocess",
        state_adapter=f"{_LITE}:adapt_state",
        splitter=f"{_LITE}:split_backbone_head",
    )

from .architectures import arch_for_depth  # noqa: E402,F401 - SageMaker num_layers, re-exported


def arch_info(arch: str) -> ArchInfo:
    try:
        return TORCH_ARCHS[arch]
    except KeyError:
        raise UnknownNameError("architecture", arch, TORCH_ARCHS) from None


def arch_preprocess(
    arch: str, image_size: int | None = None, resize_size: int = 0
) -> PreprocessSpec:
    """The preprocessing of ``arch``'s pretrained weights (ImageNet mean/std by default).

    ``image_size`` None takes the arch's own input size (224 unless its weights say
    otherwise); ``resize_size`` 0 keeps the weights' crop ratio.
    """
    info = arch_info(arch)
    if info.preprocess:
        spec = _hook(info.preprocess)(arch, image_size)
    else:
        spec = PreprocessSpec(image_size=image_size or 224)
    if resize_size:
        spec = dataclasses.replace(spec, resize_size=int(resize_size))
    return spec


def adapt_state_dict(
    arch: str, state: Mapping[str, torch.Tensor], model: nn.Module, *, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """``state`` in ``model``'s keys (a published file may name its tensors differently)."""
    info = arch_info(arch)
    if info.state_adapter:
        return _hook(info.state_adapter)(arch, state, model, source=source)
    return dict(state)


def split_backbone_head(model: nn.Module, arch: str):
    """``(backbone, head)`` through the arch's splitter hook, or None when it has none."""
    info = arch_info(arch)
    return _hook(info.splitter)(model) if info.splitter else None


def _replace_head(model: nn.Module, info: ArchInfo, num_classes: int) -> None:
    parent_name, _, leaf = info.head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, leaf)
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes)
    elif isinstance(old, nn.Conv2d):  # SqueezeNet classifies with a 1x1 convolution
        new = nn.Conv2d(old.in_channels, num_classes, kernel_size=1)
    else:  # pragma: no cover - table above only names Linear/Conv2d heads
        raise TypeError(f"cannot replace head of type {type(old).__name__}")
    setattr(parent, leaf, new)


def head_parameter_names(arch: str) -> tuple[str, ...]:
    head = arch_info(arch).head
    return (f"{head}.weight", f"{head}.bias")


def cached_weights_path(arch: str) -> tuple[Path, str]:
    """Where torchvision would cache ``arch``'s ImageNet weights, and their URL."""
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    url = weights.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name, url


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely (``weights_only=True``), unwrapping common checkpoint shapes."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means a bad file
        raise CheckpointError(
            f"{path}: cannot read as a PyTorch state dict ({type(exc).__name__}: {exc}). "
            "Pass a file saved with torch.save(model.state_dict(), path)."
        ) from exc
    for key in ("model", "state_dict", "model_state"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: does not contain a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_backbone(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, arch: str, source: str = "checkpoint"
) -> list[str]:
    """Load every tensor that fits; a head of another size is skipped (real transfer).

    Returns the skipped head keys. Raises if anything *outside* the head is missing or
    mis-shaped, which means the checkpoint is for another architecture.
    """
    own = model.state_dict()
    head = set(head_parameter_names(arch))
    skipped: list[str] = []
    bad: list[str] = []
    usable = {}
    for key, value in state.items():
        if key not in own:
            bad.append(f"unexpected {key}")
        elif own[key].shape != value.shape:
            (skipped if key in head else bad).append(
                key if key in head else f"{key}: {tuple(value.shape)} vs {tuple(own[key].shape)}"
            )
        else:
            usable[key] = value
    missing = [k for k in own if k not in state and k not in head]
    if bad or missing:
        detail = "; ".join((bad + [f"missing {k}" for k in missing])[:6])
        raise CheckpointError(
            f"{source}: does not match architecture {arch!r} ({detail}). "
            "Check --arch, or that the file holds this model's weights."
        )
    model.load_state_dict(usable, strict=False)
    return skipped


def create_model(
    arch: str, num_classes: int, *, weights: str | Path | None = "imagenet"
) -> nn.Module:
    """Build ``arch`` with a fresh ``num_classes`` head.

    ``weights``: ``"imagenet"`` (torchvision's cache only, never downloaded), ``None`` /
    ``"none"`` (random init), or a path to a state dict (its head may have another size).
    """
    info = arch_info(arch)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if info.builder:
        return _hook(info.builder)(arch, num_classes, weights=weights)
    model = torchvision.models.get_model(arch, weights=None)
    state: Mapping[str, torch.Tensor] | None = None
    source = ""
    if weights in ("imagenet", "default", "pretrained"):
        path, url = cached_weights_path(arch)
        if not path.is_file():
            raise WeightsNotFoundError(
                f"ImageNet weights for {arch} are not in the local cache ({path}) and "
                f"caltech-edge never downloads. Download {url} to that path "
                f"(or pass --weights FILE, or --weights none to train from scratch)."
            )
        state, source = load_state_dict_file(path), str(path)
    elif weights not in (None, "none", "scratch"):
        state, source = load_state_dict_file(weights), str(weights)
    if state is not None:
        # Load before replacing the head when the head matches (ImageNet, 1000 classes).
        load_backbone(model, state, arch=arch, source=source)
    _replace_head(model, info, num_classes)
    if state is not None:
        head = set(head_parameter_names(arch))
        head_state = {k: v for k, v in state.items() if k in head}
        if head_state and all(
            model.state_dict()[k].shape == v.shape for k, v in head_state.items()
        ):
            model.load_state_dict(head_state, strict=False)
    return model
