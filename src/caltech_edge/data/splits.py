"""Reproducible train/val/test splits: the standard per-class protocol or published lists.

Caltech-256 results are reported as "N training images per class (15/30/45/60), the rest
for testing". :func:`make_split` draws them seeded and stratified, each class with its own
generator (``seed``, class index), so adding a class or a file in one class never changes
the draw of another. A :class:`Split` saves the *relative paths* of every subset as well as
the indices, so loading it against a dataset re-resolves the files and refuses, with a clear
error, a split made for other classes or other files (instead of silently training on the
wrong images).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_json
from ..errors import DatasetError
from .datasets import CLUTTER_NAMES, ImageDataset

log = logging.getLogger(__name__)

SUBSETS = ("train", "val", "test")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Split:
    """Index lists into one dataset, plus what is needed to check they still fit it."""

    train: tuple[int, ...]
    val: tuple[int, ...] = ()
    test: tuple[int, ...] = ()
    seed: int | None = None
    train_per_class: int | None = None
    val_per_class: int | None = None
    protocol: str = "per-class"  # or "files"
    classes: tuple[str, ...] = ()
    files: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    dataset_name: str = ""

    def __post_init__(self) -> None:
        for name in SUBSETS:
            object.__setattr__(self, name, tuple(int(i) for i in getattr(self, name)))
        object.__setattr__(self, "classes", tuple(self.classes))
        seen: set[int] = set()
        for name in SUBSETS:
            overlap = seen.intersection(getattr(self, name))
            if overlap:
                raise DatasetError(
                    f"split subsets overlap: {len(overlap)} image(s) of {name!r} are also in "
                    "an earlier subset"
                )
            seen.update(getattr(self, name))

    def subset(self, name: str) -> list[int]:
        if name not in SUBSETS:
            raise DatasetError(f"unknown subset {name!r}; choose one of {', '.join(SUBSETS)}")
        return list(getattr(self, name))

    @property
    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in SUBSETS}

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "protocol": self.protocol,
            "seed": self.seed,
            "train_per_class": self.train_per_class,
            "val_per_class": self.val_per_class,
            "dataset": {"name": self.dataset_name, "classes": list(self.classes)},
            "sizes": self.sizes,
            **{name: list(getattr(self, name)) for name in SUBSETS},
            "files": {name: list(self.files.get(name, ())) for name in SUBSETS},
        }

    def save(self, path: str | Path) -> Path:
        """Write the split as JSON (atomically)."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "split") -> Split:
        try:
            dataset = data.get("dataset", {})
            return cls(
                train=data["train"],
                val=data.get("val", ()),
                test=data.get("test", ()),
                seed=data.get("seed"),
                train_per_class=data.get("train_per_class"),
                val_per_class=data.get("val_per_class"),
                protocol=data.get("protocol", "per-class"),
                classes=tuple(dataset.get("classes", ())),
                files={k: tuple(v) for k, v in data.get("files", {}).items()},
                dataset_name=dataset.get("name", ""),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(
                f"{source}: not a caltech-edge split file ({exc!r}); write one with "
                "`caltech-edge data split`"
            ) from exc

    @classmethod
    def load(cls, path: str | Path, *, dataset: ImageDataset | None = None) -> Split:
        """Read a split; with ``dataset``, re-resolve its files there and refuse a mismatch."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise DatasetError(f"{path}: split file not found") from exc
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: unreadable split file ({exc})") from exc
        if not isinstance(data, dict):
            raise DatasetError(f"{path}: not a caltech-edge split file (expected a JSON object)")
        split = cls.from_dict(data, source=str(path))
        return split.resolve(dataset, source=str(path)) if dataset is not None else split

    def resolve(self, dataset: ImageDataset, *, source: str = "split") -> Split:
        """This split with indices into ``dataset``, matched by relative path.

        Raises DatasetError when the classes differ or a file of the split is missing.
        """
        if self.classes and tuple(self.classes) != tuple(dataset.classes):
            raise DatasetError(
                f"{source}: the split was made for {len(self.classes)} classes "
                f"({_preview(self.classes)}) but {dataset.root} has {len(dataset.classes)} "
                f"({_preview(dataset.classes)}); check drop_clutter / the dataset root, or "
                "make a new split with `caltech-edge data split`"
            )
        if not any(self.files.get(name) for name in SUBSETS):
            _check_indices(self, dataset, source)
            return self
        where = {dataset.relpath(i): i for i in range(len(dataset))}
        resolved: dict[str, list[int]] = {}
        for name in SUBSETS:
            rels = self.files.get(name, ())
            missing = [r for r in rels if r not in where]
            if missing:
                raise DatasetError(
                    f"{source}: {len(missing)} file(s) of the {name!r} subset are not usable "
                    f"images in {dataset.root} (e.g. {_preview(missing)}); the dataset changed "
                    "since the split was made: make a new split with `caltech-edge data split`"
                )
            resolved[name] = [where[r] for r in rels]
        return replace(self, **resolved)


def _preview(items: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(str(x) for x in list(items)[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _check_indices(split: Split, dataset: ImageDataset, source: str) -> None:
    top = max((max(getattr(split, n), default=-1) for n in SUBSETS), default=-1)
    if top >= len(dataset):
        raise DatasetError(
            f"{source}: index {top} is out of range for {dataset.root} ({len(dataset)} images)"
        )


def _with_files(split_kwargs: dict[str, Any], dataset: ImageDataset) -> Split:
    files = {n: tuple(dataset.relpath(i) for i in split_kwargs[n]) for n in SUBSETS}
    return Split(**split_kwargs, classes=dataset.classes, files=files, dataset_name=dataset.name)


def make_split(
    dataset: ImageDataset,
    *,
    train_per_class: int = 30,
    val_per_class: int = 0,
    test_per_class: int | None = None,
    seed: int = 0,
) -> Split:
    """N training (and V validation) images per class, drawn seeded; the rest for testing.

    ``test_per_class`` caps the test images per class (None = all the rest). Raises
    DatasetError naming the class if a class has too few images to leave one for testing.
    """
    if train_per_class < 1 or val_per_class < 0:
        raise DatasetError(
            f"train_per_class must be >= 1 and val_per_class >= 0, got "
            f"{train_per_class} and {val_per_class}"
        )
    need = train_per_class + val_per_class
    subsets: dict[str, list[int]] = {name: [] for name in SUBSETS}
    for label, members in enumerate(dataset.indices_by_class()):
        if not members:
            raise DatasetError(
                f"class {dataset.classes[label]!r} has no usable images (empty folder, or every "
                f"file skipped: see `caltech-edge data check`); add images or remove the folder"
            )
        if len(members) <= need:
            raise DatasetError(
                f"class {dataset.classes[label]!r} has {len(members)} usable image(s), fewer "
                f"than {need + 1} (train {train_per_class} + val {val_per_class} + at least one "
                "test); lower --train-per-class/--val-per-class"
            )
        order = np.random.default_rng([seed, label]).permutation(len(members))
        picked = [members[k] for k in order]
        subsets["train"] += sorted(picked[:train_per_class])
        subsets["val"] += sorted(picked[train_per_class:need])
        rest = picked[need:] if test_per_class is None else picked[need : need + test_per_class]
        subsets["test"] += sorted(rest)
    return _with_files(
        {
            **subsets,
            "seed": seed,
            "train_per_class": train_per_class,
            "val_per_class": val_per_class,
            "protocol": "per-class",
        },
        dataset,
    )


def _read_list(items: str | Path | Iterable[str]) -> list[str]:
    if isinstance(items, (str, Path)):
        path = Path(items)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read the file list ({exc})") from exc
    else:
        lines = list(items)
    out = []
    for line in lines:
        line = line.strip().replace("\\", "/")
        if line and not line.startswith("#"):
            line = line.split("\t")[-1]  # a .lst line: index, label(s), path
            out.append(line[2:] if line.startswith("./") else line)
    return out


def split_from_files(
    dataset: ImageDataset,
    train_list: str | Path | Iterable[str],
    test_list: str | Path | Iterable[str],
    *,
    val_list: str | Path | Iterable[str] | None = None,
) -> Split:
    """A split from published file lists (one path relative to the dataset root per line).

    E.g. ``../shared/data/caltech101-train.txt`` (``accordion/image_0002.jpg``). Listed
    files that the scan skipped as bad, or that belong to a class dropped with
    ``drop_clutter``, are left out with a warning; any other unknown path is an error.
    """
    where = {dataset.relpath(i): i for i in range(len(dataset))}
    skipped = {
        s.path.relative_to(dataset.root).as_posix()
        for s in dataset.skipped
        if _under(s.path, dataset.root)
    }
    subsets: dict[str, list[int]] = {"val": []}
    dropped = 0
    for name, items in (("train", train_list), ("val", val_list), ("test", test_list)):
        if items is None:
            continue
        indices, missing = [], []
        for rel in _read_list(items):
            if rel in where:
                indices.append(where[rel])
            elif rel in skipped or (dataset.drop_clutter and rel.split("/")[0] in CLUTTER_NAMES):
                dropped += 1
            else:
                missing.append(rel)
        if missing:
            raise DatasetError(
                f"{len(missing)} path(s) of the {name} list are not in {dataset.root} "
                f"(e.g. {_preview(missing)}); paths must be relative to the dataset root"
            )
        subsets[name] = indices
    if dropped:
        log.warning("split_from_files: left out %d listed file(s) (skipped or clutter)", dropped)
    return _with_files(
        {
            **subsets,
            "seed": None,
            "train_per_class": None,
            "val_per_class": None,
            "protocol": "files",
        },
        dataset,
    )


def _under(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True
