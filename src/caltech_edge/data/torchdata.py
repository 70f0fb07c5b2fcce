"""The torch side of the data layer: a ``Dataset`` over an :class:`ImageDataset`, a
``DataLoader`` helper, and the PIL/torchvision reference transform.

Training tensors come from the same numpy/OpenCV :func:`preprocess` (and
:mod:`~caltech_edge.data.augment`) as everything else, so train, eval, export checks and
the device all see identical pixels. :func:`torch_eval_transform` is the torchvision v2
pipeline that definition is meant to match; it exists for the parity test and the
preprocessing benchmark, and for users who want to compare with a stock torchvision setup.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._registry import require
from .loader import load_example
from .transforms import PreprocessSpec

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .augment import AugmentSpec
    from .datasets import ImageDataset

torch = require("torch", "torch")


class TorchImageDataset(torch.utils.data.Dataset):
    """``(float32 CHW tensor, int label)`` for ``indices`` of ``dataset``.

    Augmentation is seeded per (seed, epoch, index); call :meth:`set_epoch` each epoch
    to get new draws that are still reproducible with any number of workers.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        indices: Sequence[int],
        spec: PreprocessSpec,
        *,
        augment: AugmentSpec | None = None,
        seed: int = 0,
    ) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        self.spec = spec
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        chw, label = load_example(
            self.dataset,
            self.indices[i],
            self.spec,
            augment=self.augment,
            seed=self.seed,
            epoch=self.epoch,
        )
        return torch.from_numpy(chw), int(label)

    @property
    def targets(self) -> list[int]:
        return [self.dataset.targets[i] for i in self.indices]


def make_loader(
    dataset: ImageDataset,
    indices: Sequence[int],
    spec: PreprocessSpec,
    *,
    batch_size: int,
    shuffle: bool = False,
    augment: AugmentSpec | None = None,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader over :class:`TorchImageDataset` with a seeded shuffle."""
    data = TorchImageDataset(dataset, indices, spec, augment=augment, seed=seed)
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return torch.utils.data.DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=generator,
        persistent_workers=False,
    )


def pil_load(path: str | Path) -> Any:
    """The stock torchvision way to read an image: Pillow, converted to RGB."""
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


def torch_eval_transform(spec: PreprocessSpec) -> Any:
    """The torchvision v2 pipeline (PIL RGB -> CHW float tensor) that :func:`preprocess` matches.

    Resize of the shorter side (bilinear, antialiased), center crop, scale to [0, 1],
    mean/std normalisation, then the model's channel order.
    """
    from torchvision.transforms import InterpolationMode, v2

    steps: list[Any] = [  # resize and crop run on the PIL image (Pillow's resampler), as stock
        v2.Resize(spec.resize_size, interpolation=InterpolationMode.BILINEAR, antialias=True),
        v2.CenterCrop(spec.image_size),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(spec.mean), std=list(spec.std)),
    ]
    if spec.channel_order == "BGR":
        steps.append(v2.Lambda(lambda t: t.flip(0)))
    return v2.Compose(steps)
