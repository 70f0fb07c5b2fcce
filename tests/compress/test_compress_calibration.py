"""The calibration reader: training images only, stratified, warns when unrepresentative."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from caltech_edge.data.calibration import (
    CalibrationReader,
    CalibrationWarning,
    stratified_sample,
    validation_batches,
)
from caltech_edge.data.splits import Split
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.errors import ConfigError

SPEC = PreprocessSpec(image_size=32, resize_size=36)


def test_stratified_sample_covers_classes_before_repeating_any():
    labels = [0] * 10 + [1] * 3 + [2] * 7
    picked = stratified_sample(labels, range(len(labels)), 7, seed=1)
    counts = np.bincount([labels[i] for i in picked], minlength=3)
    assert len(picked) == 7 and counts.min() >= 2 and counts.max() <= 3
    assert sorted(stratified_sample(labels, [0, 1, 10], 99)) == [0, 1, 10]  # all, no repeats


def test_reader_uses_the_training_split_and_rewinds(synthetic_root, tiny_run):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = CalibrationReader.from_dataset(
            synthetic_root, spec=SPEC, calib_size=12, split=tiny_run.split, input_name="x"
        )
    train = set(Split.load(tiny_run.split).train)
    assert len(reader.indices) == 12 and set(reader.indices) <= train  # never test images
    first = [reader.get_next() for _ in range(12)]
    assert reader.get_next() is None
    assert all(set(b) == {"x"} and b["x"].shape == (1, 3, 32, 32) for b in first)
    assert all(b["x"].dtype == np.float32 for b in first)
    reader.rewind()
    again = reader.get_next()
    np.testing.assert_array_equal(again["x"], first[0]["x"])
    assert len(list(reader)) == len(reader) == 12
    items = list(reader.nncf_dataset().get_inference_data())
    assert len(items) == 12


def test_warns_about_too_few_images_and_missing_classes(synthetic_root):
    with pytest.warns(CalibrationWarning) as record:
        reader = CalibrationReader.from_dataset(synthetic_root, spec=SPEC, calib_size=2)
    messages = " ".join(str(w.message) for w in record)
    assert "only 2 calibration images" in messages
    assert "covers 2 of 4 classes" in messages
    assert reader.classes_seen == 2 and reader.classes_total == 4
    with pytest.raises(ConfigError):
        CalibrationReader.from_dataset(synthetic_root, spec=SPEC, calib_size=0)


def test_batched_reader_and_arrays(synthetic_root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = CalibrationReader.from_dataset(
            synthetic_root, spec=SPEC, calib_size=10, batch_size=4
        )
    sizes = [b["data"].shape[0] for b in iter(reader.get_next, None)]
    assert sizes == [4, 4, 2] and len(reader) == 3
    arrays = CalibrationReader.from_arrays(np.zeros((3, 3, 8, 8), np.float32))
    assert len(list(arrays)) == 3


def test_validation_batches_avoid_calibration_images(synthetic_root, tiny_run):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = CalibrationReader.from_dataset(
            synthetic_root, spec=SPEC, calib_size=20, split=tiny_run.split
        )
    val = validation_batches(
        synthetic_root, spec=SPEC, split=tiny_run.split, avoid=reader.indices, size=50
    )
    total = sum(len(y) for _, y in val)
    assert total == 40 - 20  # the training images not used for calibration
    assert {int(c) for _, y in val for c in y} == {0, 1, 2, 3}


def _images(root):
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".png"))


def test_calibrates_from_a_flat_folder_without_classes(synthetic_root, tmp_path):
    import shutil

    from caltech_edge.data.calibration import calibration_reader
    from caltech_edge.data.transforms import PreprocessSpec

    flat = tmp_path / "flat"
    flat.mkdir()
    for i, p in enumerate(_images(synthetic_root)[:20]):
        shutil.copy(p, flat / f"{i:03d}{p.suffix}")
    (flat / "notes.txt").write_text("not an image")
    spec = PreprocessSpec(image_size=32, resize_size=36)
    with pytest.warns(CalibrationWarning, match="only 12 calibration images"):
        reader = calibration_reader(flat, spec=spec, calib_size=12)
    batches = list(reader)
    assert reader.count == 12 and len(batches) == 12 and batches[0].shape == (1, 3, 32, 32)
    assert [b.tobytes() for b in reader] == [b.tobytes() for b in batches]  # re-iterable


def test_nested_tree_named_like_caltech_is_read_as_plain_images(synthetic_root, tmp_path):
    import shutil

    from caltech_edge.data.calibration import calibration_reader
    from caltech_edge.data.transforms import PreprocessSpec

    root = tmp_path / "256_ObjectCategories"
    for i, p in enumerate(_images(synthetic_root)[:9]):
        dest = root / f"day{i}" / "cam" / f"{i}{p.suffix}"  # not NNN.name, one image each
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)
    spec = PreprocessSpec(image_size=32, resize_size=36)
    for where in (root, tmp_path):
        with pytest.warns(CalibrationWarning):
            assert calibration_reader(where, spec=spec, calib_size=50).count == 9


def test_a_folder_without_images_says_what_it_found(tmp_path):
    from caltech_edge.data.calibration import calibration_reader
    from caltech_edge.data.transforms import PreprocessSpec
    from caltech_edge.errors import DatasetError

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.csv").write_text("1,2")
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DatasetError, match=r"no images found; it holds 2 files .*\.csv") as e:
        calibration_reader(tmp_path, spec=PreprocessSpec(32))
    assert "\n" not in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found; it holds nothing"):
        calibration_reader(tmp_path / "empty", spec=PreprocessSpec(32))
