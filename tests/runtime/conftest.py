"""Fixtures for the device runtime: tiny exported models, a generated video, a real broker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import Broker, need_mosquitto, write_video

IMAGE_SIZE = 32
CLASSES = ("001.red", "002.green", "003.blue")


@pytest.fixture(scope="session")
def edge_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A random-weight ResNet-18 (3 classes, 32 px) exported to ONNX, OpenVINO IR and MXNet."""
    import torch

    from caltech_edge.card import ModelCard
    from caltech_edge.data.transforms import PreprocessSpec
    from caltech_edge.export.mxnet import onnx_to_mxnet
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.export.openvino import onnx_to_openvino
    from caltech_edge.models import create_model

    out = tmp_path_factory.mktemp("edge_models")
    torch.manual_seed(0)
    model = create_model("resnet18", len(CLASSES), weights=None).eval()
    card = ModelCard(
        arch="resnet18",
        class_names=CLASSES,
        preprocess=PreprocessSpec(image_size=IMAGE_SIZE),
        name="tiny-resnet18",
        version="3",
    )
    onnx_path = export_onnx(model, card, out / "onnx" / "model.onnx")
    xml = onnx_to_openvino(onnx_path, out / "openvino" / "model.xml", card=card)
    symbol = onnx_to_mxnet(onnx_path, out / "mxnet" / "model-symbol.json", card=card)
    x = np.random.default_rng(0).standard_normal((1, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    return {
        "onnxruntime": onnx_path,
        "openvino": xml,
        "mxnet": symbol,
        "card": card,
        "x": x,
        "reference": reference,
        "root": out,
    }


@pytest.fixture(scope="session")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi", 40)


@pytest.fixture()
def broker(tmp_path: Path):
    need_mosquitto()
    b = Broker(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def edge_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ONNX export alone of the ``edge_artifacts`` model (no MXNet/OpenVINO needed)."""
    import torch

    from caltech_edge.card import ModelCard
    from caltech_edge.data.transforms import PreprocessSpec
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet18", len(CLASSES), weights=None).eval()
    card = ModelCard(
        arch="resnet18",
        class_names=CLASSES,
        preprocess=PreprocessSpec(image_size=IMAGE_SIZE),
        name="tiny-resnet18",
        version="3",
    )
    return export_onnx(model, card, tmp_path_factory.mktemp("edge_onnx") / "model.onnx")
