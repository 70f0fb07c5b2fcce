"""Image datasets from folders: Caltech-256's official layout and any class-per-folder tree.

``open_dataset(root)`` finds the layout:

* Caltech-256: ``root/256_ObjectCategories/NNN.name/NNN_MMMM.jpg``, the
  ``256_ObjectCategories`` folder itself, a folder of ``NNN.name`` class folders (e.g. a
  subset), or ``256_ObjectCategories.tar`` (given directly or lying in ``root``), which is
  extracted safely once next to the archive. Labels follow the folder *numbers*
  (``001`` -> 0 ... ``257.clutter`` -> 256); ``drop_clutter=True`` gives the 256 classes
  most papers use.
* Anything else: a generic tree ``root/<class>/.../<image>`` (classes in sorted folder
  order, as torchvision's ImageFolder; nested sub-folders belong to their top class), e.g.
  Caltech-101 or "hot dog / not hot dog".

Every file is checked once at scan time (:func:`caltech_edge.data.imageio.probe`: header
and end marker, no decode). Bad files go to ``ds.skipped`` with a reason and are logged
once, as one summary. A file that passes the scan but fails to decode later (corrupt
entropy data) must not kill an epoch: ``ds[i]`` logs it once, records it in ``ds.skipped``
and returns the next decodable image *of the same class* instead, so labels and class
balance stay right. Only a class with no decodable image at all raises.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import DatasetError
from .archive import safe_extract
from .imageio import MAX_PIXELS, ImageDecodeError, load_image, probe
from .synth import CATEGORIES_DIR, is_synthetic

log = logging.getLogger(__name__)

CALTECH256_TAR = "256_ObjectCategories.tar"
_CALTECH_FOLDER = re.compile(r"^(\d{3})\.(.+)$")
#: Folder names treated as a "clutter"/background class by ``drop_clutter=True``.
CLUTTER_NAMES = ("257.clutter", "clutter", "BACKGROUND_Google")
_SUMMARY_LIMIT = 20


class Sample(NamedTuple):
    path: Path
    label: int


class Skipped(NamedTuple):
    path: Path
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "reason": self.reason}


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".") or path.name == "__MACOSX"


def _not_utf8(name: str) -> bool:
    """True for a file name that is not valid UTF-8 (Python keeps its bytes as surrogates).

    Such a name cannot go into a model card, a split JSON or an im2rec ``.lst``.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _shown(name: str) -> str:
    """``name`` itself, or its raw bytes (``b'caf\\xe9'`` shown as ``'caf\\xe9'``) when not UTF-8."""
    return repr(os.fsencode(name))[1:] if _not_utf8(name) else name


def _check_class_names(root: Path, folders: list[Path]) -> None:
    for folder in folders:
        if _not_utf8(folder.name):
            raise DatasetError(
                f"{_shown(str(root))}: class folder {_shown(folder.name)} is not valid UTF-8 "
                "(class names go into model cards and .lst files); rename it, e.g. "
                "`convmv -f latin1 -t utf8 -r --notest DATASET`"
            )


class ImageDataset:
    """A class-per-folder image tree. ``ds[i]`` is ``(RGB uint8 HxWx3, label)``."""

    name: str

    def __init__(
        self,
        root: str | Path,
        *,
        drop_clutter: bool = False,
        max_pixels: int = MAX_PIXELS,
        name: str | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: dataset folder not found")
        self.max_pixels = int(max_pixels)
        self.drop_clutter = bool(drop_clutter)
        self.synthetic = is_synthetic(self.root)
        self.skipped: list[Skipped] = []
        folders = self._class_folders()
        if self.drop_clutter:
            folders = [f for f in folders if f.name not in CLUTTER_NAMES]
        if not folders:
            raise DatasetError(
                f"{self.root}: no class folders found; expected ROOT/<class>/<images> "
                "(or the Caltech-256 layout ROOT/256_ObjectCategories/NNN.name/)"
            )
        _check_class_names(self.root, folders)
        self.classes: tuple[str, ...] = tuple(f.name for f in folders)
        self.samples: list[Sample] = []
        for label, folder in enumerate(folders):
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                reason: str | None
                if any(_is_hidden(part) for part in path.relative_to(folder).parents if part.name):
                    reason = "inside a hidden folder"
                elif _not_utf8(str(path.relative_to(self.root))):
                    reason = (
                        "file name is not valid UTF-8; rename it (e.g. convmv -f latin1 -t utf8)"
                    )
                else:
                    reason = probe(path, max_pixels=self.max_pixels)
                if reason:
                    self.skipped.append(Skipped(path, reason))
                else:
                    self.samples.append(Sample(path, label))
        self.targets: list[int] = [s.label for s in self.samples]
        self._warn_empty(folders)
        self.name = name or self._default_name()
        self._by_class: list[list[int]] | None = None
        self._failed: set[Path] = set()
        self._log_summary()

    def _warn_empty(self, folders: list[Path]) -> None:
        """A class with no usable image cannot be trained or split: say so at scan time."""
        counts = Counter(self.targets)
        for label, folder in enumerate(folders):
            if counts.get(label, 0) == 0:
                bad = sum(1 for s in self.skipped if folder in s.path.parents)
                why = f"all {bad} file(s) were skipped" if bad else "the folder is empty"
                log.warning(
                    "%s: class %r has no usable images (%s); add images or remove the folder",
                    self.root,
                    folder.name,
                    why,
                )

    # -- layout hooks ------------------------------------------------------------------
    def _class_folders(self) -> list[Path]:
        folders = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and not _is_hidden(entry):
                folders.append(entry)
            elif entry.is_file() and entry.name != "synthetic.json":
                self.skipped.append(Skipped(entry, "not inside a class folder"))
        return folders

    def _default_name(self) -> str:
        base = self.root.name or "dataset"
        return f"synthetic-{base}" if self.synthetic else base

    # -- public API --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        sample = self.samples[index]
        try:
            return load_image(sample.path, max_pixels=self.max_pixels), sample.label
        except ImageDecodeError as exc:
            self.record_failure(sample.path, exc.reason)
        return self._substitute(index), sample.label

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        kind = ", synthetic" if self.synthetic else ""
        return (
            f"{type(self).__name__}({str(self.root)!r}, classes={len(self.classes)}, "
            f"images={len(self)}, skipped={len(self.skipped)}{kind})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def relpath(self, index: int) -> str:
        """The sample's path relative to ``root``, with ``/`` separators (splits, .lst)."""
        return self.samples[index].path.relative_to(self.root).as_posix()

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.targets)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def indices_by_class(self) -> list[list[int]]:
        if self._by_class is None:
            by_class: list[list[int]] = [[] for _ in self.classes]
            for i, label in enumerate(self.targets):
                by_class[label].append(i)
            self._by_class = by_class
        return self._by_class

    def summary(self) -> str:
        """A human-readable report: classes, counts, skipped files (with reasons)."""
        kind = " (synthetic)" if self.synthetic else ""
        lines = [
            f"{self.name}{kind}: {len(self.classes)} classes, {len(self)} images, "
            f"{len(self.skipped)} skipped  [{self.root}]"
        ]
        lines += [f"  {name}: {n}" for name, n in self.class_counts().items()]
        if self.skipped:
            lines.append("skipped:")
            lines += [f"  {s.path}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)

    def record_failure(self, path: Path, reason: str) -> None:
        """Note a file that failed a full decode: added to ``skipped``, logged once."""
        if path in self._failed:
            return
        self._failed.add(path)
        self.skipped.append(Skipped(path, reason))
        log.warning("%s: %s; using another image of the same class instead", path, reason)

    # -- internals ---------------------------------------------------------------------
    def _substitute(self, index: int) -> np.ndarray:
        label = self.samples[index].label
        members = self.indices_by_class()[label]
        start = members.index(index)
        for j in members[start + 1 :] + members[:start]:
            path = self.samples[j].path
            if path in self._failed:
                continue
            try:
                return load_image(path, max_pixels=self.max_pixels)
            except ImageDecodeError as exc:
                self.record_failure(path, exc.reason)
        raise DatasetError(
            f"{self.root}: no image of class {self.classes[label]!r} can be decoded; "
            f"run `caltech-edge data check {self.root}` to see why"
        )

    def _log_summary(self) -> None:
        if not self.skipped:
            return
        shown = "; ".join(f"{s.path.name}: {s.reason}" for s in self.skipped[:_SUMMARY_LIMIT])
        more = len(self.skipped) - _SUMMARY_LIMIT
        extra = f"; ... and {more} more" if more > 0 else ""
        log.warning(
            "%s: skipped %d file(s) (%s%s). Run `caltech-edge data check %s` for the full list.",
            self.root,
            len(self.skipped),
            shown,
            extra,
            self.root,
        )


class Caltech256(ImageDataset):
    """Caltech-256 in its official layout; labels follow the folder numbers.

    ``root`` may be the ``256_ObjectCategories`` folder, its parent, a folder of
    ``NNN.name`` class folders (a subset), or the official TAR (extracted safely to
    ``extract_to``, default: beside the archive, once).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        drop_clutter: bool = False,
        max_pixels: int = MAX_PIXELS,
        name: str | None = None,
        extract_to: str | Path | None = None,
    ) -> None:
        root = resolve_caltech256_root(root, extract_to=extract_to)
        self.class_numbers: tuple[int, ...] = ()
        super().__init__(root, drop_clutter=drop_clutter, max_pixels=max_pixels, name=name)
        self.class_numbers = tuple(int(c.split(".", 1)[0]) for c in self.classes)

    def _class_folders(self) -> list[Path]:
        numbered: dict[int, Path] = {}
        for entry in sorted(self.root.iterdir()):
            if _is_hidden(entry):
                continue
            match = _CALTECH_FOLDER.match(entry.name) if entry.is_dir() else None
            if entry.is_file():
                if entry.name != "synthetic.json":
                    self.skipped.append(Skipped(entry, "not inside a class folder"))
                continue
            if match is None:
                self.skipped.append(
                    Skipped(entry, "folder is not a Caltech-256 class (expected NNN.name)")
                )
                continue
            number = int(match.group(1))
            if number in numbered:
                raise DatasetError(
                    f"{self.root}: class number {number:03d} is used by two folders, "
                    f"{numbered[number].name!r} and {entry.name!r}; remove one"
                )
            numbered[number] = entry
        return [numbered[n] for n in sorted(numbered)]

    def _default_name(self) -> str:
        return "synthetic-caltech256" if self.synthetic else "caltech256"

    @property
    def display_names(self) -> tuple[str, ...]:
        """Class names without the number prefix (``ak47`` for ``001.ak47``)."""
        return tuple(c.split(".", 1)[1] for c in self.classes)


def _looks_like_caltech256(folder: Path) -> bool:
    dirs = [e for e in folder.iterdir() if e.is_dir() and not _is_hidden(e)]
    return bool(dirs) and all(_CALTECH_FOLDER.match(d.name) for d in dirs)


def _has_caltech_folder(folder: Path) -> bool:
    return any(e.is_dir() and _CALTECH_FOLDER.match(e.name) for e in folder.iterdir())


def resolve_caltech256_root(root: str | Path, *, extract_to: str | Path | None = None) -> Path:
    """The folder holding the ``NNN.name`` class folders, extracting the TAR if needed."""
    root = Path(root)
    if root.is_file() and root.name.endswith(".tar"):
        tar = root
    elif root.is_dir() and (root / CATEGORIES_DIR).is_dir():
        return root / CATEGORIES_DIR
    elif root.is_dir() and (root / CALTECH256_TAR).is_file():
        tar = root / CALTECH256_TAR
    elif root.is_dir():
        return root
    else:
        raise DatasetError(f"{root}: dataset not found (no such folder or .tar file)")
    dest = Path(extract_to) if extract_to is not None else tar.parent / (tar.stem + "_extracted")
    out = safe_extract(tar, dest)
    return out / CATEGORIES_DIR if (out / CATEGORIES_DIR).is_dir() else out


def open_dataset(
    root: str | Path,
    *,
    drop_clutter: bool = False,
    max_pixels: int = MAX_PIXELS,
    extract_to: str | Path | None = None,
) -> ImageDataset:
    """Open ``root`` as Caltech-256 (folder, parent or TAR) or a generic class-per-folder tree."""
    path = Path(root)
    if not path.exists():
        raise DatasetError(f"{path}: dataset not found (no such folder or file)")
    caltech = (
        path.is_file()
        or (path / CATEGORIES_DIR).is_dir()
        or (path / CALTECH256_TAR).is_file()
        or (path.is_dir() and _looks_like_caltech256(path))
    )
    if caltech:
        resolved = resolve_caltech256_root(path, extract_to=extract_to)
        if not _has_caltech_folder(resolved):
            log.warning(
                "%s: no sub-folder is named NNN.name (the Caltech-256 layout); reading it as a "
                "plain class-per-folder tree",
                resolved,
            )
            return ImageDataset(resolved, drop_clutter=drop_clutter, max_pixels=max_pixels)
        return Caltech256(resolved, drop_clutter=drop_clutter, max_pixels=max_pixels)
    return ImageDataset(path, drop_clutter=drop_clutter, max_pixels=max_pixels)
