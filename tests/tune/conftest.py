"""Fixtures of the tuning tests: a tiny synthetic dataset."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tune_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from caltech_edge.data.synth import synthesize

    root = tmp_path_factory.mktemp("tune-synth")
    synthesize(root, classes=4, per_class=13, size=40, seed=3)
    return root
