"""The one place that imports MXNet, and the two compatibility fixes it needs here.

1. Importing ``mxnet`` drops PyTorch to one intra-op thread (either import order; see
   ENVIRONMENT.md). :func:`import_mxnet` (the runtime backend's, the only one) restores
   torch's thread count afterwards when torch is already loaded.
2. ``mx.onnx.export_model`` (MXNet 1.9.1) does ``from onnx import mapping``, a module onnx
   removed in 1.16. :func:`install_onnx_mapping_shim` rebuilds the two tables MXNet uses
   from ``onnx.helper`` -- only when ``onnx.mapping`` is missing, and only when exporting.

We run MXNet with numpy < 1.24 (route A of ENVIRONMENT.md), so no ``np.bool`` shim exists.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from typing import Any

from .._registry import require

# The one import_mxnet (numpy alias restore + torch thread count), shared with the device
# runtime's MXNet backend.
from ..runtime.backends.mxnet import import_mxnet


def _build_mapping_module(onnx: Any) -> types.ModuleType:
    """An ``onnx.mapping`` stand-in with the two dicts MXNet's exporter reads."""
    import numpy as np

    helper = onnx.helper
    np_to_tensor: dict[Any, int] = {}
    tensor_to_np: dict[int, Any] = {}
    for name, value in onnx.TensorProto.DataType.items():
        if name == "UNDEFINED":
            continue
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(value))
        except (KeyError, TypeError, ValueError):
            continue  # bfloat16/float8/int4 etc. have no plain numpy dtype here
        tensor_to_np[value] = dtype
        # the first tensor type for a numpy dtype wins (FLOAT before BFLOAT16, etc.)
        np_to_tensor.setdefault(dtype, value)
    for dtype in list(np_to_tensor):  # also map exactly what helper says is canonical
        with contextlib.suppress(KeyError, TypeError, ValueError):
            np_to_tensor[dtype] = helper.np_dtype_to_tensor_dtype(dtype)
    module = types.ModuleType("onnx.mapping")
    module.__doc__ = "caltech-edge shim: onnx.mapping was removed in onnx 1.16"
    module.__dict__.update(  # what mxnet.onnx reads, plus a marker for tests
        NP_TYPE_TO_TENSOR_TYPE=np_to_tensor,
        TENSOR_TYPE_TO_NP_TYPE=tensor_to_np,
        CALTECH_EDGE_SHIM=True,
    )
    return module


def install_onnx_mapping_shim() -> bool:
    """Provide ``onnx.mapping`` if this onnx lacks it. Returns True if the shim was installed."""
    onnx = require("onnx", "mxnet", purpose="Gluon -> ONNX export")
    if getattr(onnx, "mapping", None) is not None:
        return False
    try:  # an onnx that still ships the module, just not yet imported
        __import__("onnx.mapping")
        return False
    except ImportError:
        pass
    module = _build_mapping_module(onnx)
    sys.modules["onnx.mapping"] = module
    onnx.mapping = module
    return True


def import_mxnet_onnx() -> Any:
    """``mxnet.onnx`` ready to export with the installed onnx (shim applied if needed)."""
    install_onnx_mapping_shim()
    mx = import_mxnet()
    return mx.onnx


@contextlib.contextmanager
def fast_onnx_initializers() -> Iterator[None]:
    """Make ``mx2onnx`` store weights as raw bytes instead of protobuf float lists.

    MXNet's exporter calls ``onnx.helper.make_tensor(vals=arr.flatten().tolist())`` for
    every weight; appending millions of Python floats to a protobuf field is what makes a
    ResNet-50 export take ~10 s here. Inside this context, float/int tensors given as
    lists are packed with numpy (``raw_data``, the layout every runtime reads), which is
    bit-identical in value and several times faster. Restored on exit.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    original = helper.make_tensor

    def make_tensor(name, data_type, dims, vals, raw=False):  # type: ignore[no-untyped-def]
        if not raw and isinstance(vals, list) and len(vals) > 64:
            try:
                dtype = helper.tensor_dtype_to_np_dtype(data_type)
            except (KeyError, TypeError, ValueError):
                dtype = None
            if dtype is not None and dtype.kind in "fiu" and data_type != onnx.TensorProto.BFLOAT16:
                array = np.asarray(vals, dtype=dtype).reshape(tuple(dims))
                return numpy_helper.from_array(array, name)
        return original(name, data_type, dims, vals, raw)

    helper.make_tensor = make_tensor
    try:
        yield
    finally:
        helper.make_tensor = original
