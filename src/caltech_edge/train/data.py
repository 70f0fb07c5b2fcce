"""Dataset, split and loaders of a torch run, built from A's data layer.

Shuffling uses a DistributedSampler in every case (one replica when not distributed):
its order is a function of (seed, epoch) only, which is what makes resume exact and a
2-process run shard the same permutation a 1-process run walks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

from ..config import AugmentationType, TrainConfig
from ..data.datasets import ImageDataset, open_dataset
from ..data.transforms import PreprocessSpec
from ..errors import ConfigError
from .common import resolve_split  # noqa: F401 - re-exported
from .distributed import DistContext


def open_data(config: TrainConfig, data: str | Path) -> ImageDataset:
    return open_dataset(data, drop_clutter=config.drop_clutter)


def preprocess_spec(config: TrainConfig) -> PreprocessSpec:
    """The preprocessing of the arch's pretrained weights (mean/std, interpolation, and the
    arch's own input size unless the config sets another than the generic 224)."""
    from ..models.architectures import ARCHITECTURES

    row = ARCHITECTURES.get(config.arch)
    if row is None or row.preprocessing == "imagenet":  # torch-free for Gluon zoo names too
        return PreprocessSpec(image_size=config.image_size, resize_size=config.resize_size)
    from ..models.torchvision_zoo import arch_preprocess  # weights with their own (timm cfg)

    default = TrainConfig.__dataclass_fields__["image_size"].default
    size = None if config.image_size == default else config.image_size
    return arch_preprocess(config.arch, size, config.resize_size)


def num_classes_for(config: TrainConfig, dataset: ImageDataset) -> int:
    found = len(dataset.classes)
    if config.num_classes is not None and config.num_classes != found:
        raise ConfigError(
            f"num_classes={config.num_classes} but {dataset.root} has {found} classes; "
            f"set num_classes={found} or leave it unset to take it from the data"
        )
    return found


def torch_dataset(
    config: TrainConfig,
    dataset: ImageDataset,
    indices: list[int],
    *,
    train: bool,
) -> Dataset:
    from ..data.augment import AugmentSpec
    from ..data.torchdata import TorchImageDataset

    augment = None
    if train and config.augmentation != AugmentationType.NONE:
        augment = AugmentSpec.from_sagemaker(config.augmentation.value, config.min_crop_area)
    return TorchImageDataset(
        dataset, indices, preprocess_spec(config), augment=augment, seed=config.seed
    )


class Loader:
    """A DataLoader over a (possibly sharded) dataset whose order depends on (seed, epoch)."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int,
        ctx: DistContext,
        num_workers: int = 0,
        shard: bool = True,
    ) -> None:
        self.dataset = dataset
        replicas, rank = (ctx.world_size, ctx.rank) if shard else (1, 0)
        self.sampler = DistributedSampler(
            dataset, num_replicas=replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        if isinstance(dataset, TensorDataset):  # cached features: slice whole batches
            self.loader: Any = _TensorBatches(dataset.tensors, self.sampler, batch_size)
        else:
            self.loader = DataLoader(
                dataset,
                batch_size=batch_size,
                sampler=self.sampler,
                num_workers=num_workers,
                persistent_workers=False,
            )

    def epoch(self, epoch: int) -> Iterable[tuple[torch.Tensor, ...]]:
        self.sampler.set_epoch(epoch)
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:  # per-epoch augmentation draws
            set_epoch(epoch)
        return self.loader

    def __len__(self) -> int:
        return len(self.loader)


class _TensorBatches:
    """Batches of in-memory tensors in the sampler's order, one slice per batch.

    A DataLoader over a TensorDataset fetches and stacks sample by sample, which costs
    more than training a small head on the batch; the order (and so the result) is the
    same as ``DataLoader(dataset, sampler=sampler, batch_size=batch_size)``.
    """

    def __init__(self, tensors: tuple[torch.Tensor, ...], sampler: Any, batch_size: int) -> None:
        self.tensors, self.sampler, self.batch_size = tensors, sampler, batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.as_tensor(list(iter(self.sampler)), dtype=torch.long)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            yield tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)


def unshuffled(dataset: Dataset, *, batch_size: int, num_workers: int = 0) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def tensor_dataset(features: torch.Tensor, labels: torch.Tensor) -> Dataset:
    return TensorDataset(features, labels)
