"""Every image under a folder, whatever its layout: flat, nested, class folders or not.

Calibration and other label-free steps need images, not a dataset: a user points at the
photos their camera took. Files are recognised by content (:func:`~.imageio.probe`, the
same check the datasets use, with the same pixel limits), not by suffix; hidden files and
folders are skipped. Grouping by parent folder lets a sampler stay spread over folders.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..errors import DatasetError
from .imageio import MAX_PIXELS, probe


def _hidden(path: Path, root: Path) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in path.relative_to(root).parts)


def find_images(root: str | Path, *, max_pixels: int = MAX_PIXELS) -> list[Path]:
    """Sorted image files under ``root`` (recursively); an error says what was found instead."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder not found")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p, root))
    images = [p for p in files if probe(p, max_pixels=max_pixels) is None]
    if not images:
        raise DatasetError(f"{root}: no images found; it holds {describe(root, files)}")
    return images


def describe(root: Path, files: Sequence[Path]) -> str:
    """``"3 files (2 .txt, 1 .csv) in 2 folders"`` / ``"nothing"``: for error messages."""
    folders = sum(1 for p in root.rglob("*") if p.is_dir())
    if not files:
        return f"no files ({folders} empty folders)" if folders else "nothing"
    kinds = Counter(p.suffix.lower() or "(no suffix)" for p in files)
    top = ", ".join(f"{n} {k}" for k, n in kinds.most_common(4))
    where = f" in {folders} folders" if folders else ""
    return f"{len(files)} files that are not readable images ({top}){where}"


def folder_groups(images: Sequence[Path]) -> list[int]:
    """A group index per image: its parent folder (a class, a camera, a day...)."""
    index: dict[Path, int] = {}
    return [index.setdefault(p.parent, len(index)) for p in images]
