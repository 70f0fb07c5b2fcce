"""Caltech-256 layout: folder numbers -> labels, clutter, TAR (safe) and the real sample."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from caltech_edge.data.datasets import Caltech256, ImageDataset, open_dataset
from caltech_edge.data.synth import synthesize
from caltech_edge.errors import DatasetError


@pytest.fixture(scope="module")
def small_caltech(tmp_path_factory) -> Path:
    """Synthetic classes renumbered to 003, 010, 257.clutter (labels must follow numbers)."""
    root = tmp_path_factory.mktemp("c256")
    base = synthesize(root, classes=3, per_class=3, size=32, seed=1)
    names = sorted(p.name for p in base.iterdir())
    for src, dst in zip(names, ["010.beer-mug", "003.backpack", "257.clutter"]):
        (base / src).rename(base / dst)
    return root


def test_layout_detection_labels_and_clutter(small_caltech):
    for root in (small_caltech, small_caltech / "256_ObjectCategories"):
        ds = open_dataset(root)
        assert isinstance(ds, Caltech256)
        assert ds.classes == ("003.backpack", "010.beer-mug", "257.clutter")
        assert ds.class_numbers == (3, 10, 257)
        assert ds.display_names == ("backpack", "beer-mug", "clutter")
        assert ds.synthetic and ds.name == "synthetic-caltech256"
        assert [ds.classes[s.label] == s.path.parent.name for s in ds.samples] == [True] * 9
    dropped = open_dataset(small_caltech, drop_clutter=True)
    assert dropped.classes == ("003.backpack", "010.beer-mug") and len(dropped) == 6


def test_duplicate_class_number_refused(tmp_path):
    (tmp_path / "001.a").mkdir()
    (tmp_path / "001.b").mkdir()
    with pytest.raises(DatasetError, match="class number 001 is used by two folders"):
        Caltech256(tmp_path)


def _tar_of(folder: Path, tar_path: Path, extra: list[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(tar_path, "w") as tar:
        tar.add(folder, arcname="256_ObjectCategories")
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return tar_path


def test_valid_tar_loads_and_extracts_once(small_caltech, tmp_path):
    tar = _tar_of(small_caltech / "256_ObjectCategories", tmp_path / "256_ObjectCategories.tar")
    ds = open_dataset(tar, drop_clutter=True)
    assert ds.classes == ("003.backpack", "010.beer-mug") and len(ds) == 6
    assert ds.root == tmp_path / "256_ObjectCategories_extracted" / "256_ObjectCategories"
    img, label = ds[0]
    assert img.shape[2] == 3 and label == 0
    mtime = ds.root.stat().st_mtime_ns
    again = open_dataset(tmp_path)  # the folder holding the TAR works too, no re-extraction
    assert len(again) == 9 and again.root.stat().st_mtime_ns == mtime


@pytest.mark.parametrize(
    ("name", "kind", "linkname", "reason"),
    [
        ("../evil.jpg", tarfile.REGTYPE, "", "'..'"),
        ("/tmp/evil.jpg", tarfile.REGTYPE, "", "absolute path"),
        ("256_ObjectCategories/link", tarfile.SYMTYPE, "../../etc/passwd", "outside"),
        ("256_ObjectCategories/abs", tarfile.SYMTYPE, "/etc/passwd", "absolute path"),
        ("256_ObjectCategories/hard", tarfile.LNKTYPE, "../outside", "outside"),
    ],
)
def test_unsafe_tar_refused_before_writing(small_caltech, tmp_path, name, kind, linkname, reason):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    info.size = 1 if kind == tarfile.REGTYPE else 0
    tar = _tar_of(small_caltech / "256_ObjectCategories", tmp_path / "evil.tar", [info])
    with pytest.raises(DatasetError, match=f"refusing to extract.*{reason}"):
        open_dataset(tar)
    assert not (tmp_path / "evil_extracted").exists()
    assert not (tmp_path.parent / "evil.jpg").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["evil.tar"]


def test_generic_tree_is_not_caltech(tmp_path, small_caltech):
    (tmp_path / "hotdog").mkdir()
    (tmp_path / "not_hotdog").mkdir()
    src = sorted((small_caltech / "256_ObjectCategories").rglob("*.jpg"))
    for i, p in enumerate(src):
        (tmp_path / ("hotdog" if i % 2 else "not_hotdog") / p.name).write_bytes(p.read_bytes())
    ds = open_dataset(tmp_path)
    assert type(ds) is ImageDataset and ds.classes == ("hotdog", "not_hotdog")
    assert ds.class_counts() == {"hotdog": 4, "not_hotdog": 5}


@pytest.mark.shared_data
def test_real_sample_loads_all_classes(sample_root):
    ds = open_dataset(sample_root)
    assert isinstance(ds, Caltech256) and not ds.synthetic and ds.skipped == []
    assert ds.class_numbers == (145, 178, 224, 251, 252)
    assert ds.class_counts() == {
        "145.motorbikes-101": 99,
        "178.school-bus": 98,
        "224.touring-bike": 110,
        "251.airplanes-101": 110,
        "252.car-side-101": 116,
    }
    for sample in ds.samples[::25]:
        assert sample.path.name.startswith(ds.classes[sample.label].split(".")[0] + "_")
    gray_class = ds.indices_by_class()[ds.classes.index("252.car-side-101")]
    for i in gray_class[::20]:
        img, label = ds[i]
        assert img.shape[2] == 3 and label == 4
        assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])
    color, _ = ds[0]
    assert color.shape[2] == 3 and not np.array_equal(color[..., 0], color[..., 2])


@pytest.mark.shared_data
def test_real_caltech101_has_extensionless_jpeg(shared_data):
    ds = open_dataset(shared_data / "caltech101")
    assert len(ds) == 9145 and len(ds.classes) == 102 and ds.skipped == []
    tmp = next(i for i, s in enumerate(ds.samples) if s.path.name == "tmp")
    assert ds[tmp][0].shape[2] == 3
    assert len(open_dataset(shared_data / "caltech101", drop_clutter=True).classes) == 101
