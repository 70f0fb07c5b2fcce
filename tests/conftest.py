"""Fixtures every test module shares: generated data and the optional real shared data.

The core suite runs on data it generates. Tests that use the real images and weights in
``../shared/data`` find them only through ``shared_data`` and are skipped with a reason
where the folder is absent (a user's clone); CI has it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Nothing is installed silently inside tests: `make test` prepares the toolchains first
# (`caltech-edge toolchain install mxnet`); a missing one fails with that command.
os.environ.setdefault("CALTECH_EDGE_TOOLCHAIN_AUTO_INSTALL", "0")


def _shared_data_dir() -> Path:
    return Path(os.environ.get("CALTECH_EDGE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = _shared_data_dir()
    if not path.is_dir():
        pytest.skip(
            f"real shared data not found at {path}; set CALTECH_EDGE_SHARED_DATA to run this test"
        )
    return path


@pytest.fixture(scope="session")
def sample_root(shared_data: Path) -> Path:
    """533 real Caltech-256 images from 5 classes in the official layout."""
    return shared_data / "caltech256-sample"


@pytest.fixture(scope="session")
def squeezenet_weights(shared_data: Path) -> Path:
    """Real ImageNet SqueezeNet 1.1 features with a 256-class Caltech-256 head."""
    return shared_data / "weights" / "squeezenet1_1_caltech256.pth"


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset in the Caltech-256 layout (4 classes x 16 JPEGs, 64 px)."""
    from caltech_edge.data.synth import synthesize

    root = tmp_path_factory.mktemp("synthetic")
    synthesize(root, classes=4, per_class=16, size=64, seed=0)
    return root
