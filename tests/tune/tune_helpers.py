"""Helpers of the tuning tests: a tiny, fast config and the CLI as a subprocess."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: SqueezeNet 1.1 from scratch at 32 px: a trial takes seconds on a busy CPU
TINY = {
    "arch": "squeezenet1_1",
    "weights": "none",
    "image_size": 32,
    "epochs": 4,
    "batch_size": 8,
    "train_per_class": 8,
    "val_per_class": 3,
    "scheduler": "none",
}


def cli_env() -> dict[str, str]:
    """The environment for a ``python -m caltech_edge.cli`` subprocess using this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "caltech_edge.cli", *args]
