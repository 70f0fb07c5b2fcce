"""The runtime backends: picked from the artifact, one protocol, clear errors, and the
device-side import path free of torch and mxnet."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from export_helpers import CLASSES, SIZE

from caltech_edge.errors import BackendError, ModelCardError, UnknownNameError
from caltech_edge.runtime.backends import BACKENDS, backend_for, open_runtime
from caltech_edge.runtime.base import Runtime

X = np.random.default_rng(0).standard_normal((3, 3, SIZE, SIZE)).astype(np.float32)


@pytest.fixture(scope="module")
def artifacts(resnet_export) -> dict[str, Path]:
    return resnet_export[0].artifacts


def test_backend_is_picked_from_the_file(artifacts, tmp_path: Path) -> None:
    assert set(BACKENDS.names()) == {
        "onnxruntime", "openvino", "mxnet", "litert", "executorch", "coreml",
    }  # fmt: skip
    assert backend_for(artifacts["onnx"]) == "onnxruntime"
    assert backend_for(artifacts["openvino"]) == "openvino"
    assert backend_for(artifacts["mxnet"]) == "mxnet"
    assert backend_for(artifacts["mxnet"].parent) == "mxnet"
    assert backend_for(artifacts["mxnet"].parent / "model-0000.params") == "mxnet"
    assert backend_for(tmp_path / "model.tflite") == "litert"
    assert backend_for(tmp_path / "model.pte") == "executorch"
    with pytest.raises(BackendError, match=r"model\.pb.*known suffixes: "):
        backend_for(tmp_path / "model.pb")
    with pytest.raises(BackendError, match="no such model file"):
        open_runtime(tmp_path / "absent.onnx")
    with pytest.raises(UnknownNameError, match="Did you mean 'openvino'"):
        open_runtime(artifacts["onnx"], backend="openvin")


@pytest.mark.parametrize("name", ["onnx", "mxnet", "openvino", "openvino-fp16"])
def test_one_protocol_for_every_backend(artifacts, resnet_export, name) -> None:
    source = resnet_export[1]
    import torch

    with torch.no_grad():
        expected = source.model(torch.from_numpy(X)).numpy()
    rt = open_runtime(artifacts[name], precision_hint="f32", threads=2)
    assert isinstance(rt, Runtime) and rt.input_name == "data"
    assert rt.card.class_names == CLASSES
    out = rt.infer(X)  # a batch of 3 through a static batch-1 export
    assert out.shape == (3, len(CLASSES)) and out.dtype == np.float32
    atol = 5e-2 if name.endswith("fp16") else 1e-4
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=atol)
    np.testing.assert_allclose(rt.infer(X[0]), out[:1], rtol=1e-5, atol=1e-5)  # CHW accepted
    with pytest.raises(BackendError, match=r"shape \(2, 3, 32, 32\), expected \(N, 3, 64, 64\)"):
        rt.infer(np.zeros((2, 3, 32, 32), np.float32))


def test_mxnet_opens_from_folder_params_or_symbol(artifacts) -> None:
    symbol = artifacts["mxnet"]
    outs = [
        open_runtime(p).infer(X)
        for p in (symbol, symbol.parent, symbol.parent / "model-0000.params")
    ]
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_precision_hints(artifacts) -> None:
    ir = artifacts["openvino"]
    default = open_runtime(ir)  # the device default: bf16 on AMX CPUs, f32 elsewhere
    exact = open_runtime(ir, precision_hint="fp32")
    reference = open_runtime(artifacts["onnx"]).infer(X)
    assert np.abs(exact.infer(X) - reference).max() <= np.abs(default.infer(X) - reference).max()
    assert exact.precision_hint == "f32"
    with pytest.raises(BackendError, match="needs the openvino backend"):
        open_runtime(artifacts["onnx"], precision_hint="bf16")
    with pytest.raises(UnknownNameError, match="precision hint"):
        open_runtime(ir, precision_hint="int4")


def test_card_is_found_inside_or_beside(artifacts, tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(artifacts["onnx"]))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(ModelCardError, match=r"bare\.onnx: no model card inside"):
        open_runtime(bare)
    shutil.copy(artifacts["onnx"].with_name("model.card.json"), tmp_path / "bare.card.json")
    assert open_runtime(bare).card.class_names == CLASSES
    # an MXNet folder without its sidecar cannot know its classes
    folder = tmp_path / "mx"
    folder.mkdir()
    for f in ("model-symbol.json", "model-0000.params"):
        shutil.copy(artifacts["mxnet"].parent / f, folder / f)
    with pytest.raises(ModelCardError, match="no metadata slot"):
        open_runtime(folder)


BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'mxnet', 'onnx'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
import numpy as np
from caltech_edge.runtime.backends import open_runtime
for path in sys.argv[1:]:
    rt = open_runtime(path)
    print(rt.name, rt.infer(np.zeros((1, 3, {size}, {size}), np.float32)).shape)
print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'mxnet', 'onnx')))
"""


def test_backends_import_without_torch_or_mxnet(artifacts) -> None:
    code = BLOCK.format(size=SIZE)
    paths = [str(artifacts["onnx"]), str(artifacts["openvino"])]
    done = subprocess.run(
        [sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[:2] == ["onnxruntime (1, 4)", "openvino (1, 4)"] and lines[-1] == "[]"
