"""Classification metrics from logits: top-1, top-k, per-class accuracy, confusion matrix.

Pure numpy so evaluation of any backend (torch, Gluon, ONNX) reports the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class Accumulator:
    """Collects ``(logits, labels)`` batch by batch; :meth:`result` summarises them."""

    def __init__(self, num_classes: int, *, top_k: int = 5) -> None:
        self.num_classes = int(num_classes)
        self.top_k = int(top_k)
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.ks = sorted({1, 5, self.top_k})
        self.hits = dict.fromkeys(self.ks, 0)
        self.loss_sum = 0.0
        self.count = 0

    def update(self, logits: np.ndarray, labels: np.ndarray, loss: float | None = None) -> None:
        logits = np.asarray(logits, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
            raise ValueError(f"logits {logits.shape} do not match labels {labels.shape}")
        pred = logits.argmax(axis=1)
        np.add.at(self.confusion, (labels, pred), 1)
        order = np.argsort(-logits, axis=1, kind="stable")
        for k in self.ks:
            self.hits[k] += int((order[:, :k] == labels[:, None]).any(axis=1).sum())
        if loss is not None:
            self.loss_sum += float(loss) * labels.shape[0]
        self.count += int(labels.shape[0])

    def state(self) -> np.ndarray:
        """All counts as one float64 vector (to be summed across distributed ranks)."""
        hits = [self.hits[k] for k in self.ks]
        return np.concatenate([self.confusion.ravel(), hits, [self.loss_sum]]).astype(np.float64)

    def load_state(self, vector: np.ndarray) -> None:
        n = self.num_classes * self.num_classes
        self.confusion = np.rint(vector[:n]).astype(np.int64).reshape(self.confusion.shape)
        self.hits = {k: int(np.rint(v)) for k, v in zip(self.ks, vector[n : n + len(self.ks)])}
        self.loss_sum = float(vector[-1])
        self.count = int(self.confusion.sum())

    def result(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        return summarize(
            self.confusion,
            hits=self.hits,
            top_k=self.top_k,
            loss=self.loss_sum / self.count if self.count else None,
            class_names=class_names,
        )


def summarize(
    confusion: np.ndarray,
    *,
    hits: dict[int, int],
    top_k: int = 5,
    loss: float | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """JSON-ready metrics: top1, top5 (and top<k> for the configured k), per class, confusion."""
    confusion = np.asarray(confusion, dtype=np.int64)
    images = int(confusion.sum())
    correct = int(np.trace(confusion))
    support = confusion.sum(axis=1)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(support))]
    per_class = {
        name: {
            "accuracy": (float(confusion[i, i] / support[i]) if support[i] else None),
            "images": int(support[i]),
        }
        for i, name in enumerate(names)
    }
    present = [v["accuracy"] for v in per_class.values() if v["accuracy"] is not None]
    out: dict[str, Any] = {
        "images": images,
        "top1": correct / images if images else 0.0,
        "top5": hits[5] / images if images else 0.0,
        "top_k": int(top_k),
        "mean_class_accuracy": float(np.mean(present)) if present else 0.0,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "class_names": names,
    }
    out[f"top{top_k}"] = hits[top_k] / images if images else 0.0
    if loss is not None:
        out["loss"] = float(loss)
    return out
