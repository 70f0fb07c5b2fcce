"""Calibration data for post-training quantization, drawn from the TRAINING split.

Quantization picks each activation's int8 range from what it sees here, so the images
must look like deployment: the same :func:`~caltech_edge.data.transforms.preprocess` as
training and the device, every class represented, and enough of them. Two classic ways
to lose accuracy are guarded against with a :class:`CalibrationWarning`: too few images
(< :data:`MIN_RECOMMENDED`) and classes missing from the sample. Test images are never
used, so the reported test accuracy of a quantized model stays honest.

:class:`CalibrationReader` has ONNX Runtime's ``CalibrationDataReader`` shape
(``get_next() -> {input_name: array} | None``, ``rewind()``) and is iterable, so the
same object also feeds ``nncf.Dataset`` (:meth:`CalibrationReader.nncf_dataset`).

Calibration needs no labels, so :func:`calibration_reader` also takes any folder of images
(flat, nested, class folders or not; :meth:`CalibrationReader.from_folder`) when it is not
a dataset with a training split to draw from.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from ..errors import ConfigError, DatasetError
from .transforms import PreprocessSpec

log = logging.getLogger(__name__)

DEFAULT_CALIB_SIZE = 300
MIN_RECOMMENDED = 100
_CACHE_LIMIT_BYTES = 512 << 20  # keep preprocessed batches in memory below this


class CalibrationWarning(UserWarning):
    """The calibration set is too small or misses classes: INT8 accuracy may suffer."""


def stratified_sample(
    labels: Sequence[int], indices: Sequence[int], size: int, *, seed: int = 0
) -> list[int]:
    """Up to ``size`` of ``indices``, taken round-robin over classes (shuffled within each).

    Round-robin keeps the sample as class-balanced as the data allows, so a small
    calibration set still sees every class before it sees a second image of any.
    """
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i in indices:
        by_class.setdefault(int(labels[i]), []).append(int(i))
    pools = []
    for label in sorted(by_class):
        pool = list(by_class[label])
        rng.shuffle(pool)
        pools.append(pool)
    out: list[int] = []
    depth = 0
    while len(out) < size and any(depth < len(p) for p in pools):
        for pool in pools:
            if depth < len(pool) and len(out) < size:
                out.append(pool[depth])
        depth += 1
    return out


class CalibrationReader(CalibrationDataReader):
    """Yields ``{input_name: NCHW float32}`` batches; ``rewind()`` starts over.

    Built from a dataset with :meth:`from_dataset`, or from arrays with
    :meth:`from_arrays` (e.g. features already preprocessed). Batches are decoded lazily
    on the first pass and cached when they fit in memory.
    """

    def __init__(
        self,
        batches: Iterator[np.ndarray] | None = None,
        *,
        input_name: str = "data",
        factory=None,
        count: int = 0,
        classes_seen: int = 0,
        classes_total: int = 0,
        num_batches: int = 0,
        indices: Sequence[int] = (),
    ) -> None:
        self.input_name = input_name
        self._factory = factory if factory is not None else (lambda: iter(batches or ()))
        self._iter: Iterator[np.ndarray] | None = None
        self._cache: list[np.ndarray] | None = None
        self._partial: list[np.ndarray] = []
        self._cache_bytes = 0
        self.count = int(count)
        self.classes_seen = int(classes_seen)
        self.classes_total = int(classes_total)
        self.num_batches = int(num_batches) or self.count
        self.indices = tuple(int(i) for i in indices)  # dataset indices, when known

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls, arrays: Sequence[np.ndarray] | np.ndarray, *, input_name: str = "data"
    ) -> CalibrationReader:
        """One batch per element of ``arrays`` (each NCHW, or CHW made a batch of one)."""
        batches = [np.ascontiguousarray(a if a.ndim == 4 else a[None], np.float32) for a in arrays]
        if not batches:
            raise ConfigError("calibration needs at least one batch")
        count = sum(len(b) for b in batches)
        return cls(
            factory=lambda: iter(batches),
            input_name=input_name,
            count=count,
            num_batches=len(batches),
        )

    @classmethod
    def from_dataset(
        cls,
        root: str | Path,
        *,
        spec: PreprocessSpec,
        calib_size: int = DEFAULT_CALIB_SIZE,
        input_name: str = "data",
        batch_size: int = 1,
        split: str | Path | None = None,
        seed: int = 0,
        warn: bool = True,
    ) -> CalibrationReader:
        """Stratified ``calib_size`` images from the training split of the dataset at ``root``.

        ``split``: a saved split file (a run's ``split.json``) so calibration uses the
        exact training images of that run; otherwise a fresh ``make_split`` (seeded).
        ``batch_size`` must match the model's batch dimension (1 for static exports).
        """
        from .datasets import open_dataset
        from .loader import iter_batches
        from .splits import Split, make_split

        if int(calib_size) < 1:
            raise ConfigError(f"calib_size must be >= 1, got {calib_size}")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        ds = open_dataset(root)
        if split is not None:
            split_obj = Split.load(split, dataset=ds)
        else:
            smallest = min((len(m) for m in ds.indices_by_class()), default=0)
            if smallest < 2:
                raise DatasetError(f"{root}: every class needs at least 2 images to calibrate")
            split_obj = make_split(ds, train_per_class=min(30, smallest - 1), seed=seed)
        train = list(split_obj.train)
        if not train:
            raise DatasetError(f"{root}: the training split is empty; nothing to calibrate on")
        targets = list(ds.targets)
        chosen = stratified_sample(targets, train, int(calib_size), seed=seed)
        seen = len({targets[i] for i in chosen})
        total = len(ds.classes)
        reader = cls(
            indices=chosen,
            factory=lambda: iter_batches_only(
                iter_batches(ds, chosen, spec, batch_size=batch_size)
            ),
            input_name=input_name,
            count=len(chosen),
            classes_seen=seen,
            classes_total=total,
            num_batches=-(-len(chosen) // int(batch_size)),
        )
        if warn:
            reader.check(source=str(root))
        log.info(
            "calibration: %d training images from %s (%d/%d classes)",
            len(chosen),
            root,
            seen,
            total,
        )
        return reader

    @classmethod
    def from_folder(
        cls,
        root: str | Path,
        *,
        spec: PreprocessSpec,
        calib_size: int = DEFAULT_CALIB_SIZE,
        input_name: str = "data",
        batch_size: int = 1,
        seed: int = 0,
        warn: bool = True,
    ) -> CalibrationReader:
        """``calib_size`` images from anywhere under ``root`` (flat, nested, any names).

        No labels are needed: the sample is spread round-robin over the sub-folders, and
        every image goes through the one decoder and :func:`preprocess` of the card.
        """
        from .folder_images import find_images, folder_groups

        if int(calib_size) < 1 or int(batch_size) < 1:
            raise ConfigError(
                f"calib_size and batch_size must be >= 1 ({calib_size}, {batch_size})"
            )
        images = find_images(root)
        groups = folder_groups(images)
        chosen = [
            images[i]
            for i in stratified_sample(groups, range(len(images)), int(calib_size), seed=seed)
        ]
        reader = cls(
            factory=lambda: _folder_batches(chosen, spec, int(batch_size)),
            input_name=input_name,
            count=len(chosen),
            num_batches=-(-len(chosen) // int(batch_size)),
        )
        if warn:
            reader.check(source=str(root))
        log.info("calibration: %d images from the folder %s", len(chosen), root)
        return reader

    def check(self, *, source: str = "calibration set") -> list[str]:
        """Warn (and return the messages) when the set is small or misses classes."""
        problems = []
        if self.count < MIN_RECOMMENDED:
            problems.append(
                f"{source}: only {self.count} calibration images (< {MIN_RECOMMENDED}); "
                "activation ranges from so few images are noisy and INT8 accuracy may drop. "
                "Use --calib-size 300 or more if the training split has them."
            )
        if self.classes_total and self.classes_seen < self.classes_total:
            problems.append(
                f"{source}: the calibration sample covers {self.classes_seen} of "
                f"{self.classes_total} classes; an unrepresentative set can clip the "
                "activations of the missing classes. Raise --calib-size to at least the "
                "number of classes."
            )
        for msg in problems:
            warnings.warn(msg, CalibrationWarning, stacklevel=3)
        return problems

    # -- ONNX Runtime CalibrationDataReader --------------------------------------------
    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = self._next_array()
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self._iter = None
        self._partial = []
        self._cache_bytes = 0

    def _next_array(self) -> np.ndarray | None:
        if self._iter is None:
            self._iter = iter(self._cache) if self._cache is not None else self._factory()
            self._partial = []
        try:
            batch = next(self._iter)
        except StopIteration:
            if self._cache is None and self._cache_bytes <= _CACHE_LIMIT_BYTES:
                self._cache = self._partial
            self._partial = []
            return None
        if self._cache is None:
            self._cache_bytes += batch.nbytes
            if self._cache_bytes <= _CACHE_LIMIT_BYTES:
                self._partial.append(batch)
            else:
                self._partial = []
        return batch

    # -- iteration / NNCF ---------------------------------------------------------------
    def __iter__(self) -> Iterator[np.ndarray]:
        """Plain NCHW arrays, from the start (what ``nncf.Dataset`` iterates)."""
        self.rewind()
        while True:
            batch = self._next_array()
            if batch is None:
                return
            yield batch

    def __len__(self) -> int:
        """Number of batches (what NNCF's ``subset_size`` counts)."""
        return self.num_batches

    def nncf_dataset(self):
        """This set as an ``nncf.Dataset`` (each item already is the model input)."""
        from .._registry import require

        nncf = require("nncf", "openvino", "OpenVINO INT8 quantization")
        return nncf.Dataset(_Reiterable(self))


class _Reiterable:
    """Lets NNCF iterate the reader more than once (statistics, bias correction)."""

    def __init__(self, reader: CalibrationReader) -> None:
        self.reader = reader

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.reader)

    def __len__(self) -> int:
        return len(self.reader)


def _folder_batches(paths: Sequence[Path], spec: PreprocessSpec, batch_size: int):
    """NCHW float32 batches of ``paths``; an unreadable file is skipped with a warning."""
    from .imageio import load_image
    from .transforms import preprocess

    batch: list[np.ndarray] = []
    for path in paths:
        try:
            batch.append(preprocess(load_image(path), spec))
        except DatasetError as exc:
            warnings.warn(f"calibration: skipped {exc}", CalibrationWarning, stacklevel=2)
            continue
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch and batch_size == 1:
        yield np.stack(batch)
    elif batch:  # static batch dimension: pad the last batch by repeating its images
        yield np.stack((batch * batch_size)[:batch_size])


def calibration_reader(
    root: str | Path,
    *,
    spec: PreprocessSpec,
    calib_size: int = DEFAULT_CALIB_SIZE,
    split: str | Path | None = None,
    input_name: str = "data",
    batch_size: int = 1,
    seed: int = 0,
) -> CalibrationReader:
    """Calibration images from ``root``, whatever it is.

    A run's ``split`` -> its training images; a dataset (class folders, Caltech layout,
    at least 2 images per class) -> the training part of a fresh split, so test images stay
    unseen; anything else (a flat folder, a nested tree, a ``256_ObjectCategories`` whose
    sub-folders are not ``NNN.name``) -> every image found, spread over its folders.
    """
    common = {"spec": spec, "calib_size": calib_size, "input_name": input_name}
    common.update(batch_size=batch_size, seed=seed)
    if split is not None:
        return CalibrationReader.from_dataset(root, split=split, **common)
    try:
        return CalibrationReader.from_dataset(root, **common)
    except DatasetError as exc:
        log.info("%s is not a dataset (%s): calibrating on every image under it", root, exc)
        return CalibrationReader.from_folder(root, **common)


def iter_batches_only(batches) -> Iterator[np.ndarray]:
    """Drop the labels of ``(images, labels)`` batches; float32 C-contiguous images."""
    for images, _labels in batches:
        yield np.ascontiguousarray(images, dtype=np.float32)


def validation_batches(
    root: str | Path,
    *,
    spec: PreprocessSpec,
    size: int = 200,
    split: str | Path | None = None,
    avoid: Sequence[int] = (),
    batch_size: int = 1,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Labelled (NCHW, labels) batches for accuracy-controlled quantization.

    Taken from the split's validation images when it has any, else from training images
    not in ``avoid`` (the calibration sample), never from the test split. Kept in memory
    (NNCF iterates it once per tried configuration).
    """
    from .datasets import open_dataset
    from .loader import iter_batches
    from .splits import Split, make_split

    ds = open_dataset(root)
    if split is not None:
        split_obj = Split.load(split, dataset=ds)
    else:
        smallest = min((len(m) for m in ds.indices_by_class()), default=0)
        split_obj = make_split(ds, train_per_class=max(1, min(30, smallest - 1)), seed=seed)
    skip = set(avoid)
    pool = list(split_obj.val) or [i for i in split_obj.train if i not in skip]
    if not pool:
        raise DatasetError(
            f"{root}: no validation or spare training images for accuracy control; "
            "lower --calib-size or make a split with --val-per-class"
        )
    chosen = stratified_sample(list(ds.targets), pool, int(size), seed=seed + 1)
    return list(iter_batches(ds, chosen, spec, batch_size=batch_size))
