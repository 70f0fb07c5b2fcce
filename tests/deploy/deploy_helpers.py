"""Tiny exported models whose confidence a test controls (deploy and cloud tests share it)."""

from __future__ import annotations

from pathlib import Path

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
