"""INT8 rows of ``export`` calibrate on the exported run's own training split, so a run's
test images never reach calibration (its reported INT8 accuracy is on unseen images)."""

from __future__ import annotations

from pathlib import Path

from export_helpers import make_run

from caltech_edge.data.datasets import open_dataset
from caltech_edge.data.splits import make_split
from caltech_edge.data.synth import synthesize
from caltech_edge.export.pipeline import _calibration
from caltech_edge.rundir import RunDir


def test_a_runs_split_decides_the_calibration_images(synthetic_root: Path, tmp_path: Path):
    run = RunDir(make_run(tmp_path / "run", "resnet18"))
    card = run.load_card()
    dataset = open_dataset(synthetic_root)
    # a split unlike the fresh one calibration would make: 4 training images per class
    split = make_split(dataset, train_per_class=4, seed=7)
    split.save(run.split)
    fresh = _calibration(synthetic_root, card, None)
    assert set(fresh.indices) & set(split.test)  # without the run, its test images leak in
    reader = _calibration(synthetic_root, card, run.root)
    assert set(reader.indices) <= set(split.train) and len(reader.indices) == len(split.train)
    # --data naming another dataset: the run's split does not apply there, a fresh one does
    other = synthesize(tmp_path / "other", classes=3, per_class=6, size=48, seed=1)
    elsewhere = _calibration(other, card, run.root)
    assert elsewhere.count > 0 and elsewhere.classes_total == 3
