"""Fixtures of the export tests: tiny torch models saved the way users have them (a run
directory, a bare state dict), each exported ONCE per session to every FP32/FP16 format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from caltech_edge.card import ModelCard
from caltech_edge.data.synth import class_names
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.export.formats import DEFAULT_FORMATS
from caltech_edge.models import create_model

SIZE = 64
CLASSES = tuple(class_names(4))  # the synthetic dataset's folders: labels map, accuracy counts


def make_run(root: Path, arch: str, *, size: int = SIZE, seed: int = 0) -> Path:
    """A torch run directory as training writes it: card.json + model.pt."""
    torch.manual_seed(seed)
    model = create_model(arch, len(CLASSES), weights=None).eval()
    root.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), root / "model.pt")
    ModelCard(arch=arch, class_names=CLASSES, preprocess=PreprocessSpec(image_size=size)).save(
        root / "card.json"
    )
    return root


def make_checkpoint(folder: Path, arch: str, *, seed: int = 1) -> tuple[Path, Path]:
    """A bare torchvision state dict + an ``index<TAB>name`` classes file (trained elsewhere)."""
    torch.manual_seed(seed)
    model = create_model(arch, len(CLASSES), weights=None).eval()
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / f"{arch}.pth"
    torch.save(model.state_dict(), ckpt)
    classes = folder / "classes.txt"
    classes.write_text("".join(f"{i}\t{n}\n" for i, n in enumerate(CLASSES)))
    return ckpt, classes


@pytest.fixture(scope="session")
def resnet_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("resnet18-run"), "resnet18")


@pytest.fixture(scope="session")
def resnet_export(resnet_run: Path, synthetic_root: Path, tmp_path_factory):
    """ResNet-18 run -> every default format, verified on the synthetic JPEGs.

    Returns ``(ExportResult, ExportSource)``; the source holds the torch model."""
    from caltech_edge.export import export
    from caltech_edge.export.pipeline import load_run_source

    source = load_run_source(resnet_run)
    out = tmp_path_factory.mktemp("resnet18-export")
    result = export(source, formats=DEFAULT_FORMATS, out=out, data=synthetic_root, verify_images=16)
    return result, source


@pytest.fixture(scope="session")
def squeezenet_export(synthetic_root: Path, tmp_path_factory):
    """SqueezeNet 1.1 state dict + classes file -> every default format, verified."""
    from caltech_edge.export import export

    folder = tmp_path_factory.mktemp("squeezenet-ckpt")
    ckpt, classes = make_checkpoint(folder, "squeezenet1_1")
    from caltech_edge.export.pipeline import load_checkpoint_source

    source = load_checkpoint_source(ckpt, "squeezenet1_1", classes, image_size=SIZE)
    result = export(
        source, formats=DEFAULT_FORMATS, out=folder / "out", data=synthetic_root, verify_images=16
    )
    return result, source
