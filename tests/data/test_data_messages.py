"""Foreseeable dataset mistakes get a one-line error or a warning that says what to do.

Non-UTF-8 folder names (a Latin-1 archive unpacked on Linux), an empty class folder, and
a ``256_ObjectCategories`` folder whose sub-folders are not ``NNN.name``."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from caltech_edge.cli import main
from caltech_edge.data.datasets import ImageDataset, open_dataset
from caltech_edge.data.splits import make_split
from caltech_edge.errors import DatasetError


def _jpegs(folder: Path | bytes, n: int) -> None:
    folder = os.fsdecode(folder)
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        ok, data = cv2.imencode(".jpg", np.full((40, 48, 3), 30 * i, np.uint8))
        assert ok
        Path(folder, f"{i}.jpg").write_bytes(data.tobytes())


@pytest.fixture()
def latin1_root(tmp_path) -> Path:
    """A class folder named ``café`` in Latin-1 bytes (not valid UTF-8)."""
    root = tmp_path / "ds"
    _jpegs(os.fsencode(root) + b"/caf\xe9", 3)
    _jpegs(root / "tea", 3)
    return root


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "lst", "{root}", "--out", "{tmp}/x.lst"],
        ["data", "rec", "{root}", "--out", "{tmp}/rec/x", "--no-progress"],
        [
            "train",
            "--data",
            "{root}",
            "--out",
            "{tmp}/run",
            "--arch",
            "resnet18",
            "--weights",
            "none",
            "--epochs",
            "1",
            "--train-per-class",
            "1",
            "--no-progress",
        ],
    ],
    ids=["lst", "rec", "train"],
)
def test_non_utf8_class_folder_is_a_one_line_error(latin1_root, tmp_path, capsys, argv):
    args = [a.format(root=latin1_root, tmp=tmp_path) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "class folder 'caf\\xe9' is not valid UTF-8" in err and "rename it" in err
    assert not (tmp_path / "x.lst").exists() and not (tmp_path / "run").exists()


def test_non_utf8_file_name_is_skipped_with_the_reason(tmp_path, capsys):
    root = tmp_path / "ds"
    _jpegs(root / "tea", 3)
    (root / "tea" / "0.jpg").rename(os.fsdecode(os.fsencode(root / "tea") + b"/th\xe9.jpg"))
    ds = open_dataset(root)
    assert len(ds) == 2
    assert [s.reason for s in ds.skipped] == [
        "file name is not valid UTF-8; rename it (e.g. convmv -f latin1 -t utf8)"
    ]
    assert main(["data", "lst", str(root), "--out", str(tmp_path / "x.lst")]) == 0
    assert len((tmp_path / "x.lst").read_text().splitlines()) == 2


def test_empty_class_folder_is_warned_and_named_by_split(tmp_path, caplog):
    root = tmp_path / "ds"
    _jpegs(root / "full", 4)
    (root / "empty").mkdir()
    _jpegs(root / "broken", 0)
    (root / "broken" / "a.jpg").write_bytes(b"not a jpeg at all")
    with caplog.at_level("WARNING"):
        ds = ImageDataset(root)
    warnings = [r.getMessage() for r in caplog.records if "no usable images" in r.getMessage()]
    assert any("'empty'" in w and "the folder is empty" in w for w in warnings)
    assert any("'broken'" in w and "all 1 file(s) were skipped" in w for w in warnings)
    with pytest.raises(DatasetError, match="class 'broken' has no usable images") as exc:
        make_split(ds, train_per_class=1)
    assert "--train-per-class" not in str(exc.value)


def test_categories_folder_without_numbered_subfolders_is_a_plain_tree(tmp_path, caplog):
    root = tmp_path / "download"
    _jpegs(root / "256_ObjectCategories" / "cats", 2)
    _jpegs(root / "256_ObjectCategories" / "dogs", 3)
    with caplog.at_level("WARNING"):
        ds = open_dataset(root)
    assert ds.classes == ("cats", "dogs") and len(ds) == 5
    assert any("reading it as a plain" in r.getMessage() for r in caplog.records)
    # a real Caltech-256 layout is still read as such, numbered labels and all
    _jpegs(root / "256_ObjectCategories" / "007.bat", 2)
    ds = open_dataset(root)
    assert ds.classes == ("007.bat",) and ds.class_numbers == (7,)
