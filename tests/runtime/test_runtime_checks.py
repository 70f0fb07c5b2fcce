"""Checks before anything runs: the card against the model's output, the artifacts before
packaging, and infer's paths/broker options as one-line errors (exit 2, no traceback)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import run_cli

from caltech_edge.card import ModelCard, sidecar_path
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.errors import ExportError, ModelCardError
from caltech_edge.export.mxparams import read_params_index
from caltech_edge.export.package import package
from caltech_edge.runtime.predictor import load_model
from conftest import CLASSES, IMAGE_SIZE


def _card(n: int) -> ModelCard:
    names = tuple(f"{i + 1:03d}.c{i}" for i in range(n))
    return ModelCard(
        arch="resnet18", class_names=names, preprocess=PreprocessSpec(image_size=IMAGE_SIZE)
    )


def _one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


# -- card vs model ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def mislabeled_onnx(tmp_path_factory) -> Path:
    """A 3-class network exported with a card that lists 10 classes."""
    import torch

    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet18", len(CLASSES), weights=None).eval()
    return export_onnx(model, _card(10), tmp_path_factory.mktemp("bad") / "model.onnx")


def test_card_listing_other_classes_is_refused_at_load(mislabeled_onnx, edge_onnx, video, tmp_path):
    with pytest.raises(ModelCardError, match="outputs 3 classes but its card lists 10"):
        load_model(mislabeled_onnx)
    assert load_model(edge_onnx).labels == CLASSES  # a matching card loads
    proc = run_cli("infer", "--model", str(mislabeled_onnx), "--source", str(video),
                   "--buffer-dir", str(tmp_path / "s"), "--max-frames", "2", "--json")  # fmt: skip
    _one_line_error(proc, "outputs 3 classes but its card lists 10")
    assert proc.stdout == ""


def test_fused_openvino_path_checks_the_card(mislabeled_onnx, tmp_path):
    """``infer --fused`` opens the IR itself (load_fused), not through load_model."""
    from caltech_edge.export.openvino import onnx_to_openvino
    from caltech_edge.runtime.fused import load_fused

    xml = onnx_to_openvino(mislabeled_onnx, tmp_path / "bad" / "model.xml", card=_card(10))
    with pytest.raises(ModelCardError, match="outputs 3 classes but its card lists 10"):
        load_fused(xml)
    good = onnx_to_openvino(mislabeled_onnx, tmp_path / "ok" / "model.xml", card=_card(3))
    frame = np.full((48, 64, 3), 90, np.uint8)
    assert len(load_fused(good).predict(frame, top_k=3)["predictions"]) == 3


def _fake_awscam(monkeypatch) -> None:
    """``awscam`` exists only on a DeepLens; this stand-in runs the real ONNX file with ONNX
    Runtime behind its API (``Model(path, opts).doInference(hwc) -> {name: logits}``)."""
    import sys
    import types

    import onnxruntime as ort

    class Model:
        def __init__(self, path, opts):
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def doInference(self, hwc):  # awscam spells it so
            x = np.ascontiguousarray(np.asarray(hwc, np.float32).transpose(2, 0, 1))[None]
            name = self.session.get_inputs()[0].name
            return {"out": self.session.run(None, {name: x})[0]}

    module = types.ModuleType("awscam")
    module.Model = Model
    monkeypatch.setitem(sys.modules, "awscam", module)


def test_deeplens_awscam_path_checks_the_card(mislabeled_onnx, tmp_path, monkeypatch):
    """On a DeepLens the Lambda builds its model around awscam.Model (card from the sidecar
    the package ships), not through load_model."""
    import shutil

    from caltech_edge.runtime import deeplens

    _fake_awscam(monkeypatch)
    for classes in (10, 3):
        path = tmp_path / str(classes) / "model.onnx"
        path.parent.mkdir()
        shutil.copy(mislabeled_onnx, path)
        sidecar_path(path).write_text(_card(classes).to_json())
    with pytest.raises(ModelCardError, match="outputs 3 classes but its card lists 10"):
        deeplens._load({"model": str(tmp_path / "10" / "model.onnx"), "backend": None})
    model = deeplens._load({"model": str(tmp_path / "3" / "model.onnx"), "backend": None})
    assert model.backend == "awscam" and len(model.labels) == 3
    assert len(model.predict(np.full((48, 64, 3), 90, np.uint8))["predictions"]) == 3


# -- artifacts before packaging ---------------------------------------------------------
def _params_bytes(arrays: dict) -> bytes:
    """MXNet's NDArray-list layout (the reader was checked against files MXNet wrote)."""
    out = [struct.pack("<QQQ", 0x112, 0, len(arrays))]
    for arr in arrays.values():
        arr = np.ascontiguousarray(arr, np.float32)
        out.append(struct.pack("<IiI", 0xF993FAC9, 0, arr.ndim))
        out.append(struct.pack(f"<{arr.ndim}q", *arr.shape))
        out.append(struct.pack("<iii", 1, 0, 0) + arr.tobytes())
    out.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        out.append(struct.pack("<Q", len(name.encode())) + name.encode())
    return b"".join(out)


def _export_dir(root: Path, classes: int, card_classes: int) -> Path:
    mx = root / "mxnet"
    mx.mkdir(parents=True)
    nodes = [
        {"op": "null", "name": "data", "inputs": []},
        {"op": "null", "name": "fc_weight", "inputs": []},
        {"op": "null", "name": "fc_bias", "inputs": []},
        {"op": "FullyConnected", "name": "fc", "attrs": {"num_hidden": str(classes)},
         "inputs": [[0, 0, 0], [1, 0, 0], [2, 0, 0]]},
    ]  # fmt: skip
    symbol = mx / "model-symbol.json"
    symbol.write_text(json.dumps({"nodes": nodes, "arg_nodes": [0, 1, 2], "heads": [[3, 0, 0]]}))
    weights = {
        "arg:fc_weight": np.ones((classes, 3 * IMAGE_SIZE * IMAGE_SIZE)),
        "arg:fc_bias": np.zeros(classes),
    }
    (mx / "model-0000.params").write_bytes(_params_bytes(weights))
    sidecar_path(symbol).write_text(_card(card_classes).to_json())
    return root


def test_package_checks_params_and_card(tmp_path):
    good = _export_dir(tmp_path / "good", 3, 3)
    tar, zip_ = package(good, out=tmp_path / "pkg")
    assert tar.stat().st_size > 0 and zip_.stat().st_size > 0
    index = read_params_index(good / "mxnet" / "model-0000.params")
    assert index["arg:fc_bias"] == ((3,), "float32")

    params = good / "mxnet" / "model-0000.params"
    data = params.read_bytes()
    params.write_bytes(data[: len(data) // 2])
    with pytest.raises(ExportError, match="params file is truncated"):
        package(good, out=tmp_path / "pkg2")
    params.write_bytes(b"")
    with pytest.raises(ExportError, match="params file is empty"):
        package(good, out=tmp_path / "pkg2")
    assert not (tmp_path / "pkg2").exists()  # nothing half-written

    wrong = _export_dir(tmp_path / "wrong", 3, 10)
    proc = run_cli("package", str(wrong), "--out", str(tmp_path / "pkg3"))
    _one_line_error(proc, "outputs 3 classes but its card lists 10")

    (tmp_path / "afile").write_text("x")
    proc = run_cli("package", str(tmp_path / "good"), "--out", str(tmp_path / "afile"))
    _one_line_error(proc, "--out", "is a file")


# -- infer options ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "extra, words",
    [
        (["--output", "{tmp}"], ["--output", "is a directory"]),
        (["--buffer-dir", "{file}"], ["--buffer-dir", "is a file"]),
        (["--capture-dir", "{file}"], ["--capture-dir", "is a file"]),
        (["--mqtt-host", "127.0.0.1", "--mqtt-port", "99999"], ["--mqtt-port 99999"]),
        (["--mqtt-host", "127.0.0.1", "--buffer-max-bytes", "10"], ["--buffer-max-bytes 10"]),
        (
            ["--mqtt-host", "no-such-host.invalid"],
            ["--mqtt-host 'no-such-host.invalid'", "resolved"],
        ),
    ],
    ids=["output-dir", "buffer-file", "capture-file", "bad-port", "tiny-buffer", "bad-host"],
)
def test_infer_path_and_option_mistakes(edge_onnx, video, tmp_path, extra, words):
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = ["infer", "--model", str(edge_onnx), "--source", str(video), "--max-frames", "1"]
    if "--buffer-dir" not in extra:
        args += ["--buffer-dir", str(tmp_path / "state")]
    proc = run_cli(*args, *[e.format(tmp=tmp_path, file=afile) for e in extra])
    _one_line_error(proc, *words)
