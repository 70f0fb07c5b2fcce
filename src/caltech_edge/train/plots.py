"""PNG plots of a run: training curves and the confusion matrix (matplotlib, Agg backend)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_curves(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Loss and top-1 per epoch, train and (when present) validation."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, style in (("train", "-o"), ("val", "--s")):
        losses = [h.get(f"{key}_loss") for h in history]
        accs = [h.get(f"{key}_top1") for h in history]
        if any(v is not None for v in losses):
            ax_loss.plot(epochs, losses, style, label=key)
        if any(v is not None for v in accs):
            ax_acc.plot(epochs, accs, style, label=key)
    ax_loss.set(title="loss", xlabel="epoch")
    ax_acc.set(title="top-1 accuracy", xlabel="epoch", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, Path(path))


def plot_confusion(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    *,
    title: str = "confusion matrix",
) -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted)."""
    plt = _pyplot()
    matrix = np.asarray(confusion, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    n = len(class_names)
    size = min(4 + 0.35 * n, 24)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046)
    if n <= 40:
        ax.set_xticks(range(n), class_names, rotation=90, fontsize=7)
        ax.set_yticks(range(n), class_names, fontsize=7)
        if n <= 15:
            for i in range(n):
                for j in range(n):
                    if matrix[i, j]:
                        color = "white" if norm[i, j] > 0.5 else "black"  # readable on dark cells
                        ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                                color=color)  # fmt: skip
    ax.set(title=title, xlabel="predicted", ylabel="true")
    return _save(fig, Path(path))
