"""Review captured frames in a plain file, then merge the accepted ones into a dataset.

``review(DIR)`` lists every capture under ``DIR`` (a device's capture folder or the cloud's
review area, ``<NNN.class>/<name>.jpg`` + ``.predictions/...json``) in ``DIR/review.csv``:
the model's prediction is the default label, a reviewer edits the ``label`` and ``status``
columns (``pending``/``accepted``/``rejected``) in any spreadsheet or uses the flags of
``caltech-edge data review``. Rows already there keep their edits when it runs again.

``merge(DIR, into=DATASET)`` copies accepted frames into ``DATASET/<class>/`` under a name
made of their content hash, skips any image whose bytes the dataset already holds, and
appends one provenance line per file (source, device, model hash, prediction, label) to
``DATASET/.caltech-edge/provenance.jsonl`` (a hidden folder: dataset readers ignore it).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._io import atomic_write_text, sha256_file
from ..errors import DatasetError
from ..runtime.payload import now_iso

COLUMNS = ("image", "predicted", "probability", "model_hash", "device", "label", "status")
STATUSES = ("pending", "accepted", "rejected", "merged")
REVIEW_FILE = "review.csv"
PROVENANCE = Path(".caltech-edge") / "provenance.jsonl"


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _meta(image: Path) -> dict[str, Any]:
    meta = image.parent.parent / ".predictions" / image.parent.name / (image.stem + ".json")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_review(root: Path) -> list[dict[str, str]]:
    path = Path(root) / REVIEW_FILE
    if not path.is_file():
        return []
    with open(str(path), newline="", encoding="utf-8") as fh:
        return [dict(row) for row in csv.DictReader(fh)]


def write_review(root: Path, rows: Iterable[dict[str, Any]]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return atomic_write_text(Path(root) / REVIEW_FILE, buf.getvalue())


def review(
    root: Path,
    *,
    accept_all: bool = False,
    labels: dict[str, str] | None = None,
    reject: Iterable[str] = (),
) -> list[dict[str, str]]:
    """Add new captures to ``root/review.csv`` and apply decisions; returns all rows."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such capture/review folder")
    rows = {r["image"]: r for r in read_review(root)}
    for image in sorted(p for p in root.rglob("*.jpg") if _visible(p, root)):
        rel = image.relative_to(root).as_posix()
        if rel in rows:
            continue
        meta = _meta(image)
        top = (meta.get("predictions") or [{}])[0]
        predicted = str(top.get("label") or image.parent.name)
        rows[rel] = {
            "image": rel,
            "predicted": predicted,
            "probability": "{:.4f}".format(float(top.get("probability", 0.0))),
            "model_hash": str((meta.get("model") or {}).get("hash", "")),
            "device": str(meta.get("device", "")),
            "label": predicted,
            "status": "pending",
        }
    unknown = [k for k in list(labels or {}) + list(reject) if k not in rows]
    if unknown:
        raise DatasetError(f"{root}: no capture {unknown[0]!r} in review.csv")
    for rel, label in (labels or {}).items():
        rows[rel].update(label=label, status="accepted")
    for rel in reject:
        rows[rel]["status"] = "rejected"
    for row in rows.values():
        if row.get("status") not in STATUSES:
            raise DatasetError(
                "{}: {!r} has status {!r}; use one of {}".format(
                    REVIEW_FILE, row["image"], row.get("status"), ", ".join(STATUSES)
                )
            )
        if accept_all and row["status"] == "pending":
            row["status"] = "accepted"
    out = sorted(rows.values(), key=lambda r: r["image"])
    write_review(root, out)
    return out


def _class_folders(dataset: Path) -> dict[str, Path]:
    from ..data.datasets import open_dataset

    ds = open_dataset(dataset)
    folders: dict[str, Path] = {}
    for sample in ds.samples:
        folders.setdefault(ds.classes[sample.label], sample.path.parent)
    for name in ds.classes:
        folders.setdefault(name, Path(ds.root) / name)
    return folders


def _known_hashes(dataset: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(p for p in dataset.rglob("*") if p.is_file() and _visible(p, dataset)):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            out.setdefault(sha256_file(path), path.relative_to(dataset).as_posix())
    return out


def _folder_for(label: str, folders: dict[str, Path]) -> Path | None:
    if label in folders:
        return folders[label]
    plain = [f for name, f in folders.items() if name.split(".", 1)[-1] == label]
    return plain[0] if len(plain) == 1 else None


def merge(reviewed: Path, *, into: Path) -> dict[str, Any]:
    """Copy accepted captures into ``into`` (de-duplicated by content); provenance kept."""
    reviewed, into = Path(reviewed), Path(into)
    rows = read_review(reviewed)
    if not (reviewed / REVIEW_FILE).is_file():
        raise DatasetError(
            f"{reviewed}: no review.csv; run `caltech-edge data review {reviewed}` first"
        )
    folders = _class_folders(into)
    known = _known_hashes(into)
    counts = {"merged": 0, "duplicates": 0, "skipped": 0}
    provenance: list[dict[str, Any]] = []
    for row in rows:
        if row["status"] != "accepted":
            counts["skipped"] += 1
            continue
        folder = _folder_for(row["label"], folders)
        if folder is None:
            raise DatasetError(
                "{}: label {!r} of {} is not a class of {} (classes: {}); fix the label "
                "or add the class folder".format(
                    REVIEW_FILE, row["label"], row["image"], into, ", ".join(sorted(folders)[:8])
                )
            )
        source = reviewed / row["image"]
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        if digest in known:
            counts["duplicates"] += 1
            row["status"] = "merged"
            continue
        target = folder / f"capture_{digest[:16]}{source.suffix.lower()}"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name("." + target.name + ".tmp")
        shutil.copyfile(str(source), str(tmp))
        tmp.replace(target)
        known[digest] = target.relative_to(into).as_posix()
        provenance.append(
            dict(
                {k: row.get(k, "") for k in COLUMNS if k != "status"},
                file=known[digest],
                sha256=digest,
                source=str(source),
                merged=now_iso(),
            )
        )
        row["status"] = "merged"
        counts["merged"] += 1
    if provenance:
        log = into / PROVENANCE
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(str(log), "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(p) + "\n" for p in provenance)
    write_review(reviewed, rows)
    return dict(counts, provenance=str(into / PROVENANCE), files=[p["file"] for p in provenance])


def summary(rows: list[dict[str, str]]) -> tuple[dict[str, int], list[dict[str, str]]]:
    counts = {s: 0 for s in STATUSES}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts, [r for r in rows if r["status"] == "pending"]
