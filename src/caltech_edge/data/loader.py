"""Batches of preprocessed images with numpy only (no torch): for Gluon training,
calibration of quantizers and export verification.

It calls the one preprocessing definition (:func:`caltech_edge.data.transforms.preprocess`)
so these batches are bit-identical to what the torch data path and the device runtime feed
a model. With an :class:`~caltech_edge.data.augment.AugmentSpec`, each image is augmented
with a generator seeded by (seed, epoch, index): the same batches for the same arguments,
whatever the order they are drawn in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .transforms import PreprocessSpec, preprocess

if TYPE_CHECKING:  # pragma: no cover
    from .augment import AugmentSpec
    from .datasets import ImageDataset


def load_example(
    dataset: ImageDataset,
    index: int,
    spec: PreprocessSpec,
    *,
    augment: AugmentSpec | None = None,
    seed: int = 0,
    epoch: int = 0,
) -> tuple[np.ndarray, int]:
    """One (CHW float32, label) pair, augmented when ``augment`` says so."""
    rgb, label = dataset[index]
    if augment is not None and augment.enabled:
        from .augment import augment_and_normalize

        rng = np.random.default_rng([seed, epoch, index])
        return augment_and_normalize(rgb, augment, spec, rng), label
    return preprocess(rgb, spec), label


def iter_batches(
    dataset: ImageDataset,
    indices: Sequence[int],
    spec: PreprocessSpec,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    augment: AugmentSpec | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(NCHW float32 batch, int64 labels)`` over ``indices`` in order (or shuffled)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.asarray(list(indices), dtype=np.int64)
    if shuffle:
        order = order[np.random.default_rng([seed, epoch]).permutation(len(order))]
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        chunk = order[start : start + batch_size]
        pairs = [
            load_example(dataset, int(i), spec, augment=augment, seed=seed, epoch=epoch)
            for i in chunk
        ]
        yield (
            np.stack([p[0] for p in pairs]),
            np.asarray([p[1] for p in pairs], dtype=np.int64),
        )
