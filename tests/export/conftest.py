"""Fixtures of the export tests: each tiny model is exported ONCE per session to every
FP32/FP16 format (see export_helpers.py for how the models are saved)."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import SIZE, make_checkpoint, make_run

from caltech_edge.export.formats import DEFAULT_FORMATS


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
