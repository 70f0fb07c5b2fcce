"""caltech-edge: from an image dataset to an edge camera.

The public API is imported lazily so that ``import caltech_edge`` stays cheap and the
device runtime never imports torch or mxnet.
"""

from __future__ import annotations

from ._registry import lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "ModelCard": "caltech_edge.card",
    "PreprocessSpec": "caltech_edge.data.transforms",
    "preprocess": "caltech_edge.data.transforms",
    "RunDir": "caltech_edge.rundir",
    "load_torch_model": "caltech_edge.rundir",
    "create_model": "caltech_edge.models",
    "synthesize": "caltech_edge.data.synth",
}

__all__ = ["__version__", *_LAZY]


__getattr__ = lazy_getattr(__name__, _LAZY)
