"""Export: a trained model becomes files a device runs, each verified against its source.

``export(source, formats=..., out=...)`` is the front door; the formats are one table
(:data:`FORMATS`); :func:`verify_artifact` re-checks any artifact later. Submodules are
imported lazily so ``import caltech_edge.export`` stays cheap.
"""

from __future__ import annotations

from .._registry import lazy_getattr

_LAZY = {
    "FORMATS": "caltech_edge.export.formats",
    "DEFAULT_FORMATS": "caltech_edge.export.formats",
    "ExportFormat": "caltech_edge.export.formats",
    "get_format": "caltech_edge.export.formats",
    "export": "caltech_edge.export.pipeline",
    "ExportResult": "caltech_edge.export.pipeline",
    "export_onnx": "caltech_edge.export.onnx",
    "onnx_to_mxnet": "caltech_edge.export.mxnet",
    "onnx_to_openvino": "caltech_edge.export.openvino",
    "verify_artifact": "caltech_edge.export.verify",
    "VerifyReport": "caltech_edge.export.verify",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
