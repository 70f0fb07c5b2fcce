"""Splits: stratified, seeded, JSON round trip, mismatch refused, published lists."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from caltech_edge.data.datasets import open_dataset
from caltech_edge.data.splits import Split, make_split, split_from_files
from caltech_edge.data.synth import synthesize
from caltech_edge.errors import DatasetError


@pytest.fixture(scope="module")
def ds(synthetic_root):
    return open_dataset(synthetic_root)


def test_stratified_and_seeded(ds):
    split = make_split(ds, train_per_class=5, val_per_class=2, seed=3)
    labels = lambda idx: Counter(ds.targets[i] for i in idx)  # noqa: E731
    assert labels(split.train) == {c: 5 for c in range(4)}
    assert labels(split.val) == {c: 2 for c in range(4)}
    assert labels(split.test) == {c: 9 for c in range(4)}
    assert sorted(split.train + split.val + split.test) == list(range(len(ds)))
    assert make_split(ds, train_per_class=5, val_per_class=2, seed=3) == split
    assert make_split(ds, train_per_class=5, val_per_class=2, seed=4).train != split.train
    capped = make_split(ds, train_per_class=5, test_per_class=3, seed=3)
    assert capped.train == make_split(ds, train_per_class=5, seed=3).train
    assert len(capped.test) == 12


def test_json_round_trip_and_mismatch(ds, tmp_path):
    split = make_split(ds, train_per_class=4, seed=0)
    path = split.save(tmp_path / "split.json")
    data = json.loads(path.read_text())
    assert data["files"]["train"][0].startswith("001.synthetic-")
    assert Split.load(path) == split
    assert Split.load(path, dataset=ds) == split
    # another dataset (different classes) is refused with a clear message
    synthesize(tmp_path / "other", classes=3, per_class=2, size=16)
    other = open_dataset(tmp_path / "other")
    with pytest.raises(DatasetError, match="made for 4 classes"):
        Split.load(path, dataset=other)
    # a file of the split vanished from the dataset
    data["files"]["test"][0] = "001.synthetic-red-circle/gone.jpg"
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"not usable images.*make a new split"):
        Split.load(path, dataset=ds)
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="not a caltech-edge split"):
        Split.load(tmp_path / "junk.json")
    with pytest.raises(DatasetError, match="not found"):
        Split.load(tmp_path / "missing.json")


def test_too_few_images_and_overlap(ds):
    with pytest.raises(DatasetError, match=r"has 16 usable image.*lower --train-per-class"):
        make_split(ds, train_per_class=16)
    with pytest.raises(DatasetError, match="overlap"):
        Split(train=(1, 2), test=(2, 3))


def test_split_from_files(ds):
    rel = [ds.relpath(i) for i in range(len(ds))]
    split = split_from_files(ds, rel[::2], ["# comment", "", *rel[1::2]])
    assert split.train == tuple(range(0, len(ds), 2)) and split.protocol == "files"
    with pytest.raises(DatasetError, match="not in"):
        split_from_files(ds, ["nope/x.jpg"], rel[1:])


@pytest.mark.shared_data
def test_published_caltech101_split(shared_data):
    ds = open_dataset(shared_data / "caltech101")
    split = split_from_files(
        ds, shared_data / "caltech101-train.txt", shared_data / "caltech101-test.txt"
    )
    assert split.sizes == {"train": 6096, "val": 0, "test": 3049}
    no_bg = open_dataset(shared_data / "caltech101", drop_clutter=True)
    split = split_from_files(
        no_bg, shared_data / "caltech101-train.txt", shared_data / "caltech101-test.txt"
    )
    assert len(split.train) + len(split.test) == len(no_bg)
