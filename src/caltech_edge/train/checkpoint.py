"""Atomic checkpoints that make a resumed run reach the same result as an uninterrupted one.

A checkpoint holds the model, optimizer, epoch, history, best-so-far state and every RNG
state (python, numpy, torch); the data order is a function of (seed, epoch), so restoring
these is enough for bit-identical continuation. Files are written through a temp file and
a rename: a kill during the write leaves the previous checkpoint intact. Loading uses
``weights_only=True``: a checkpoint is data, never code.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_write_bytes
from ..errors import CheckpointError

FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": _encode_python_rng(random.getstate()),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():  # pragma: no cover - no GPU here
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_decode_python_rng(state["python"]))
    nps = state["numpy"]
    np.random.set_state(
        (
            nps["name"],
            nps["keys"].numpy().astype(np.uint32),
            nps["pos"],
            nps["has_gauss"],
            nps["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():  # pragma: no cover
        torch.cuda.set_rng_state_all(state["cuda"])


def _encode_python_rng(state: tuple) -> dict[str, Any]:
    version, internal, gauss = state
    return {
        "version": version,
        "internal": torch.tensor(internal, dtype=torch.int64),
        "gauss": gauss,
    }


def _decode_python_rng(data: dict[str, Any]) -> tuple:
    return (data["version"], tuple(int(v) for v in data["internal"].tolist()), data["gauss"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format version) atomically."""
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc}); delete it and "
            "train again with resume disabled (--no-resume)"
        ) from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a caltech-edge resume checkpoint (format mismatch)")
    return state
