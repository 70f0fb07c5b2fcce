"""Fixtures for deployments: tiny ONNX/IR models whose confidence we control, a broker."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from runtime_helpers import Broker, need_mosquitto, write_video

IMAGE_SIZE = 32
CLASSES = ("001.red", "002.green", "003.blue")


def tiny_model(
    out: Path,
    *,
    classes=CLASSES,
    scale: float = 1.0,
    seed: int = 0,
    version: str = "1",
    ir: bool = False,
) -> Path:
    """A 32 px ResNet-18 exported to ONNX (or IR); ``scale`` multiplies the head (0: uniform)."""
    import torch

    from caltech_edge.card import ModelCard
    from caltech_edge.data.transforms import PreprocessSpec
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.models import create_model

    torch.manual_seed(seed)
    model = create_model("resnet18", len(classes), weights=None).eval()
    with torch.no_grad():
        model.fc.weight.mul_(scale)
        model.fc.bias.mul_(scale)
    card = ModelCard(
        arch="resnet18",
        class_names=classes,
        preprocess=PreprocessSpec(image_size=IMAGE_SIZE),
        name="tiny",
        version=version,
    )
    path = export_onnx(model, card, out / "model.onnx")
    if ir:
        from caltech_edge.export.openvino import onnx_to_openvino

        return onnx_to_openvino(path, out / "ir" / "model.xml", card=card)
    return path


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("deploy_models")
    return {
        "v1": tiny_model(root / "v1", scale=40.0, seed=0, version="1"),
        "v2": tiny_model(root / "v2", scale=40.0, seed=1, version="2"),
        "v2_ir": tiny_model(root / "v2ir", scale=40.0, seed=1, version="2", ir=True),
        "collapse": tiny_model(root / "collapse", scale=0.0, seed=2, version="3"),
        "two_class": tiny_model(root / "two", classes=CLASSES[:2], scale=40.0, seed=3, version="4"),
    }


@pytest.fixture(scope="session")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi", 600)


@pytest.fixture()
def broker(tmp_path: Path):
    need_mosquitto()
    b = Broker(tmp_path).start()
    yield b
    b.stop()
