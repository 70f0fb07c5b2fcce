"""Safe extraction of a dataset TAR archive (e.g. the official ``256_ObjectCategories.tar``).

A TAR can name members ``/etc/passwd`` or ``../../x``, or carry links pointing outside the
target folder (CVE-2007-4559). We refuse the *whole* archive if any member is unsafe,
before writing a single byte, and additionally pass Python's ``"data"`` extraction filter
(PEP 706, Python 3.11.4+) where it exists. Extraction goes to a hidden temporary folder
that is renamed into place at the end, so an interrupted extraction leaves nothing that
looks complete.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from ..errors import DatasetError

DONE_MARKER = ".caltech_edge_extracted"


def _unsafe_reason(member: tarfile.TarInfo) -> str | None:
    name = member.name
    path = PurePosixPath(name)
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in path.parts:
        return "path contains '..'"
    if member.isdev() or member.isfifo():
        return "device or FIFO entry"
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        if member.linkname.startswith(("/", "\\")):
            return f"link to absolute path {member.linkname!r}"
        base = path.parent if member.issym() else PurePosixPath()
        depth = 0
        for part in (*base.parts, *target.parts):
            if part == "..":
                depth -= 1
            elif part not in ("", "."):
                depth += 1
            if depth < 0:
                return f"link {member.linkname!r} points outside the extraction folder"
    return None


def check_members(tar: tarfile.TarFile, tar_path: str | Path) -> list[tarfile.TarInfo]:
    """All members of ``tar``; raises DatasetError naming the first unsafe one."""
    members = tar.getmembers()
    for member in members:
        reason = _unsafe_reason(member)
        if reason:
            raise DatasetError(
                f"{tar_path}: refusing to extract: member {member.name!r} is unsafe ({reason}). "
                "The archive may be malicious; get a clean copy of it."
            )
    return members


def safe_extract(tar_path: str | Path, dest: str | Path) -> Path:
    """Extract ``tar_path`` into the folder ``dest`` (created) and return ``dest``.

    Does nothing if ``dest`` holds a completed extraction already (marker file).
    """
    tar_path, dest = Path(tar_path), Path(dest)
    if (dest / DONE_MARKER).is_file():
        return dest
    if not tar_path.is_file():
        raise DatasetError(f"{tar_path}: archive not found")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with tarfile.open(tar_path) as tar:
            members = check_members(tar, tar_path)
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(partial, members=members, **kwargs)
    except tarfile.TarError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise DatasetError(
            f"{tar_path}: cannot extract ({exc}); is it a complete TAR file?"
        ) from exc
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if dest.exists():  # a stale, incomplete extraction: replace it
        shutil.rmtree(dest)
    os.replace(partial, dest)
    (dest / DONE_MARKER).write_text(f"{tar_path.name}\n")
    return dest
