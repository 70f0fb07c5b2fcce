"""File-based review and merge: defaults, edits kept, content-hash de-dup, provenance."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from runtime_helpers import run_cli

from caltech_edge.cloud.review import merge, read_review, review
from caltech_edge.data.datasets import open_dataset
from caltech_edge.errors import DatasetError
from caltech_edge.runtime.capture import RetrainCapture

CLASSES = ("001.red", "002.green", "003.blue")


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (40, 40, 3), dtype=np.uint8)


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "dataset"
    for i, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        cv2.imwrite(str(root / name / "orig.jpg"), _image(100 + i))
    return root


def _capture(root, seeds, label_index=0):
    capture = RetrainCapture(root, threshold=1.01)
    for s in seeds:
        result = {"predictions": [{"label": CLASSES[label_index], "index": label_index, "probability": 0.4}],
                  "model": {"hash": "oldhash"}}  # fmt: skip
        capture.offer(_image(s), result, name=f"cap{s}")
    return root


def test_review_defaults_edits_and_merge(dataset, tmp_path):
    caps = _capture(tmp_path / "caps", [1, 2, 3])
    rows = review(caps)
    assert [(r["label"], r["status"], r["model_hash"]) for r in rows] == [
        ("001.red", "pending", "oldhash")
    ] * 3
    review(caps, labels={"001.red/cap2.jpg": "green"}, reject=["001.red/cap3.jpg"])
    rows = {r["image"]: r for r in review(caps, accept_all=True)}  # edits survive a re-run
    assert (
        rows["001.red/cap2.jpg"]["label"] == "green"
        and rows["001.red/cap3.jpg"]["status"] == "rejected"
    )
    out = merge(caps, into=dataset)
    assert (out["merged"], out["skipped"]) == (2, 1)
    assert sorted(p.parent.name for p in dataset.glob("*/capture_*.jpg")) == [
        "001.red",
        "002.green",
    ]
    prov = [
        json.loads(x) for x in (dataset / ".caltech-edge/provenance.jsonl").read_text().splitlines()
    ]
    assert {p["label"] for p in prov} == {"001.red", "green"} and all(
        p["model_hash"] == "oldhash" for p in prov
    )
    assert len(open_dataset(dataset)) == 5  # the dataset reader sees the merged files, not the log
    assert {r["status"] for r in read_review(caps)} == {"merged", "rejected"}
    # the same bytes captured again (another device) are recognised and not copied twice
    again = _capture(tmp_path / "again", [1])
    review(again, accept_all=True)
    assert merge(again, into=dataset)["duplicates"] == 1
    shutil.copy(dataset / "003.blue" / "orig.jpg", again / "001.red" / "dup.jpg")
    review(again, accept_all=True)
    assert merge(again, into=dataset)["duplicates"] == 1  # already in the dataset as an original


def test_unknown_label_and_cli(dataset, tmp_path):
    caps = _capture(tmp_path / "caps", [5])
    review(caps, labels={"001.red/cap5.jpg": "purple"})
    with pytest.raises(DatasetError, match=r"'purple'.*not a class"):
        merge(caps, into=dataset)
    proc = run_cli("data", "review", str(caps), "--set", "001.red/cap5.jpg=blue")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["accepted"] == 1
    proc = run_cli("data", "merge", str(caps), "--into", str(dataset))
    assert proc.returncode == 0 and json.loads(proc.stdout)["merged"] == 1
    proc = run_cli("data", "merge", str(tmp_path / "nothing"), "--into", str(dataset))
    assert proc.returncode == 2 and "data review" in proc.stderr
