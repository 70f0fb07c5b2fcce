"""Dataset, split and loaders of a torch run, built from A's data layer.

Shuffling uses a DistributedSampler in every case (one replica when not distributed):
its order is a function of (seed, epoch) only, which is what makes resume exact and a
2-process run shard the same permutation a 1-process run walks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..config import AugmentationType, TrainConfig
from ..data.datasets import ImageDataset, open_dataset
from ..data.splits import Split, make_split
from ..data.transforms import PreprocessSpec
from ..errors import ConfigError
from ..rundir import RunDir
from .distributed import DistContext


def open_data(config: TrainConfig, data: str | Path) -> ImageDataset:
    return open_dataset(data, drop_clutter=config.drop_clutter)


def resolve_split(
    config: TrainConfig, dataset: ImageDataset, run: RunDir, *, resume: bool
) -> Split:
    """``split_file`` if given, else the run's own split on resume, else a fresh seeded one."""
    if config.split_file:
        return Split.load(config.split_file, dataset=dataset)
    if resume and run.split.is_file() and run.last.is_file():
        return Split.load(run.split, dataset=dataset)
    return make_split(
        dataset,
        train_per_class=config.train_per_class,
        val_per_class=config.val_per_class,
        test_per_class=config.test_per_class,
        seed=config.seed,
    )


def preprocess_spec(config: TrainConfig) -> PreprocessSpec:
    return PreprocessSpec(image_size=config.image_size, resize_size=config.resize_size)


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
        augment = AugmentSpec.from_sagemaker(config.augmentation.value)
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
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            persistent_workers=False,
        )

    def epoch(self, epoch: int) -> DataLoader:
        self.sampler.set_epoch(epoch)
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:  # per-epoch augmentation draws
            set_epoch(epoch)
        return self.loader

    def __len__(self) -> int:
        return len(self.loader)


def unshuffled(dataset: Dataset, *, batch_size: int, num_workers: int = 0) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def tensor_dataset(features: torch.Tensor, labels: torch.Tensor) -> Dataset:
    from torch.utils.data import TensorDataset

    return TensorDataset(features, labels)
