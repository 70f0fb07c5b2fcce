"""The MXNet import helper and the onnx.mapping shim MXNet's ONNX exporter needs."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import onnx
import pytest

from caltech_edge.errors import MissingDependencyError
from caltech_edge.frameworks import _mxnet_compat as compat


@pytest.fixture
def no_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate an onnx without ``onnx.mapping`` (>= 1.16) whatever ran before."""
    monkeypatch.setitem(sys.modules, "onnx.mapping", None)  # `import onnx.mapping` fails
    monkeypatch.delattr(onnx, "mapping", raising=False)


def test_shim_installs_when_mapping_is_missing(no_mapping: None) -> None:
    assert compat.install_onnx_mapping_shim() is True
    from onnx import mapping  # what mxnet.onnx does

    assert mapping.NP_TYPE_TO_TENSOR_TYPE[np.dtype("float32")] == onnx.TensorProto.FLOAT
    assert mapping.NP_TYPE_TO_TENSOR_TYPE[np.dtype("int64")] == onnx.TensorProto.INT64
    assert mapping.NP_TYPE_TO_TENSOR_TYPE[np.dtype("float16")] == onnx.TensorProto.FLOAT16
    assert mapping.TENSOR_TYPE_TO_NP_TYPE[onnx.TensorProto.FLOAT] == np.dtype("float32")
    assert mapping.TENSOR_TYPE_TO_NP_TYPE[onnx.TensorProto.BOOL] == np.dtype("bool")
    # every entry agrees with onnx.helper, the maintained source of truth
    for dtype, tensor_type in mapping.NP_TYPE_TO_TENSOR_TYPE.items():
        assert onnx.helper.tensor_dtype_to_np_dtype(tensor_type) == dtype
    assert compat.install_onnx_mapping_shim() is False  # second call: already there


def test_shim_leaves_an_existing_mapping_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    real = types.ModuleType("onnx.mapping")
    monkeypatch.setattr(onnx, "mapping", real, raising=False)
    assert compat.install_onnx_mapping_shim() is False
    assert onnx.mapping is real
    assert not hasattr(real, "NP_TYPE_TO_TENSOR_TYPE")


def test_missing_mxnet_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mxnet", None)  # makes `import mxnet` fail
    with pytest.raises(MissingDependencyError, match="caltech-edge toolchain install mxnet"):
        compat.import_mxnet()


def test_importing_mxnet_keeps_torch_threads() -> None:
    pytest.importorskip("torch", reason="only where torch and mxnet share an environment")
    code = (
        "import torch; torch.set_num_threads(2)\n"
        "from caltech_edge.frameworks._mxnet_compat import import_mxnet\n"
        "import_mxnet(); print(torch.get_num_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "2"
