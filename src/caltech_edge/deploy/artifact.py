"""Model artifacts on the wire: pack, fetch with a size bound, verify, unpack safely.

A single-file artifact (``.onnx``) travels as itself, so its sha256 is also the
``model.hash`` every result carries. Multi-file artifacts (OpenVINO IR ``.xml`` + ``.bin``,
MXNet symbol + params) travel as one uncompressed tar whose members are flat regular files:
the device refuses links, absolute paths, ``..``, sub-folders, too many members and too
many bytes, so a hostile archive cannot write outside the staging folder or fill the disk.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import List, Tuple, Union

from ..card import sidecar_path
from ..errors import CaltechEdgeError

PathLike = Union[str, "os.PathLike[str]"]
MAX_ARTIFACT_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 16
ARCHIVE_SUFFIX = ".model.tar"


class DeploymentError(CaltechEdgeError):
    """A deployment cannot go ahead; the message is the job's FAILED reason."""


def artifact_files(path: PathLike) -> List[Path]:
    """Every file a model artifact needs, the entry file first (``.xml`` -> also ``.bin``)."""
    path = Path(path)
    if not path.is_file():
        raise DeploymentError(f"{path}: no such model artifact")
    files = [path]
    if path.suffix == ".xml":
        files.append(path.with_suffix(".bin"))
    elif path.name.endswith("-symbol.json"):
        files += sorted(path.parent.glob(path.name[: -len("-symbol.json")] + "-*.params"))
    card = sidecar_path(path)
    if card.is_file() and card != path:
        files.append(card)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DeploymentError("{}: missing companion file(s) {}".format(path, ", ".join(missing)))
    return files


def pack(path: PathLike, out_dir: PathLike) -> Tuple[Path, str]:
    """The file to ship for ``path`` and the entry name inside it (archive for multi-file)."""
    files = artifact_files(path)
    if len(files) == 1:
        return files[0], files[0].name
    out = Path(out_dir) / (files[0].name + ARCHIVE_SUFFIX)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(str(tmp), "w", format=tarfile.PAX_FORMAT) as tar:
        for f in files:
            info = tar.gettarinfo(str(f), arcname=f.name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0  # same files -> same bytes -> same sha256
            with open(str(f), "rb") as fh:
                tar.addfile(info, fh)
    os.replace(str(tmp), str(out))
    return out, files[0].name


def fetch(url: str, dest: PathLike, *, max_bytes: int, timeout: float = 30.0) -> str:
    """Copy ``url`` (http(s)://, file:// or a path) to ``dest``, at most ``max_bytes``; sha256."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    parsed = urllib.parse.urlparse(url)
    digest = hashlib.sha256()
    total = 0
    tmp = dest.with_name(dest.name + ".part")
    try:
        if parsed.scheme in ("http", "https"):
            src = urllib.request.urlopen(url, timeout=timeout)
        elif parsed.scheme in ("", "file"):
            src = open(urllib.parse.unquote(parsed.path) if parsed.scheme else url, "rb")  # noqa: SIM115
        else:
            raise DeploymentError(f"artifact URL {url!r}: only http(s)://, file:// or a path")
        with src, open(str(tmp), "wb") as out:
            length = getattr(src, "headers", {}).get("Content-Length") if parsed.scheme else None
            if length is not None and int(length) > max_bytes:
                raise DeploymentError(f"artifact is {length} bytes, over the {max_bytes} limit")
            for block in iter(lambda: src.read(1 << 16), b""):
                total += len(block)
                if total > max_bytes:
                    raise DeploymentError(f"artifact exceeds the {max_bytes} byte limit")
                digest.update(block)
                out.write(block)
        os.replace(str(tmp), str(dest))
    except OSError as exc:
        raise DeploymentError(f"cannot download {url}: {exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return digest.hexdigest()


def safe_extract(
    archive: PathLike,
    dest: PathLike,
    *,
    max_members: int = MAX_MEMBERS,
    max_bytes: int = MAX_ARTIFACT_BYTES,
) -> List[Path]:
    """Extract a flat tar of regular files into ``dest``; refuse anything else."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out: List[Path] = []
    total = 0
    try:
        with tarfile.open(str(archive), "r:") as tar:
            members = tar.getmembers()
            if len(members) > max_members:
                raise DeploymentError(f"archive has {len(members)} members (limit {max_members})")
            for m in members:
                name = m.name
                if not m.isfile():
                    raise DeploymentError(f"archive member {name!r} is not a regular file")
                if name != os.path.basename(name) or name in ("", ".", "..") or "\\" in name:
                    raise DeploymentError(f"archive member {name!r} is not a plain file name")
                total += m.size
                if total > max_bytes:
                    raise DeploymentError(f"archive expands past {max_bytes} bytes")
                src = tar.extractfile(m)
                if src is None:
                    raise DeploymentError(f"archive member {name!r} is unreadable")
                with src, open(str(dest / name), "wb") as fh:
                    shutil.copyfileobj(src, fh)
                out.append(dest / name)
    except tarfile.TarError as exc:
        raise DeploymentError(f"artifact is not a valid archive: {exc}") from exc
    return out


def unpack(download: Path, entry: str, dest: Path, *, archive: bool, max_bytes: int) -> Path:
    """The loadable entry file of a downloaded artifact (extracted if it is an archive)."""
    if os.path.basename(entry) != entry or entry in ("", ".", ".."):
        raise DeploymentError(f"job entry {entry!r} is not a plain file name")
    if archive:
        safe_extract(download, dest, max_bytes=max_bytes)
    else:
        dest.mkdir(parents=True, exist_ok=True)
        os.replace(str(download), str(dest / entry))
    path = dest / entry
    if not path.is_file():
        raise DeploymentError(f"artifact has no entry file {entry!r}")
    return path
