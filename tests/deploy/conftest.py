"""Fixtures for deployments: tiny ONNX/IR models whose confidence we control, a broker."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_helpers import CLASSES, tiny_model
from runtime_helpers import Broker, need_mosquitto, write_video


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
