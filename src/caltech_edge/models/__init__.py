"""Model builders: torchvision architectures with a replaced head, loaded offline.

Gluon builders live in :mod:`caltech_edge.frameworks.gluon`.
"""

from .torchvision_zoo import (
    TORCH_ARCHS,
    arch_for_depth,
    create_model,
    head_parameter_names,
    load_backbone,
    load_state_dict_file,
)

__all__ = [
    "TORCH_ARCHS",
    "arch_for_depth",
    "create_model",
    "head_parameter_names",
    "load_backbone",
    "load_state_dict_file",
]
