"""Gluon, unchanged for the user, from the core CLI (no mxnet in this interpreter): train ->
evaluate (every split, incl. all) -> export onnx+mxnet (verified) -> verify -> package. All
MXNet work runs in the mxnet toolchain's worker; the core never imports mxnet."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest

from caltech_edge.cli import main
from caltech_edge.errors import UnknownNameError

TRAIN = ["--framework", "gluon", "--arch", "resnet18", "--weights", "none", "--epochs", "4",
         "--batch-size", "16", "--image-size", "32", "--train-per-class", "10",
         "--val-per-class", "2", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def gluon_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gluon") / "run"
    extra = ["--set", "test_per_class=3", "--set", "checkpoint_frequency=2"]
    assert main(["train", "--data", str(synthetic_root), "--out", str(out), *TRAIN, *extra]) == 0
    return out


def test_gluon_training_runs_in_the_toolchain_and_honours_the_shared_rules(
    gluon_run: Path,
) -> None:
    assert "mxnet" not in sys.modules
    metrics = json.loads((gluon_run / "metrics.json").read_text())
    card = json.loads((gluon_run / "card.json").read_text())
    assert card["framework"] == "gluon" and metrics["framework"] == "gluon"
    assert metrics["test"]["top1"] >= 0.5, metrics["history"]
    assert metrics["split_sizes"] == {"train": 40, "val": 8, "test": 12}  # test_per_class=3
    assert sorted(p.name for p in (gluon_run / "checkpoints").glob("epoch-*.params")) == [
        "epoch-0002.params",
        "epoch-0004.params",
    ]  # checkpoint_frequency=2
    best = max(metrics["history"], key=lambda e: e["val_top1"])  # first best epoch wins
    assert metrics["best_epoch"] == best["epoch"]


def test_evaluate_a_gluon_run_on_every_split(gluon_run: Path, synthetic_root: Path, capsys) -> None:
    sizes = {"train": 40, "val": 8, "test": 12, "all": 64}
    for split, images in sizes.items():
        argv = ["evaluate", str(gluon_run), "--data", str(synthetic_root), "--split", split]
        assert main([*argv, "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["images"] == images and result["split"] == split
    assert main(["evaluate", str(gluon_run), "--data", str(synthetic_root), "--split", "tset"]) == 2
    assert "choose one of train, val, test, all" in capsys.readouterr().err


def test_export_verify_package_from_the_core(
    gluon_run: Path, synthetic_root: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "export"
    argv = ["export", str(gluon_run), "--to", "onnx,mxnet", "--out", str(out)]
    assert main([*argv, "--data", str(synthetic_root), "--images", "8", "--no-progress"]) == 0
    summary = json.loads((out / "export.json").read_text())
    assert summary["framework"] == "gluon"
    assert all(f["verification"]["passed"] for f in summary["formats"].values())
    symbol = out / "mxnet" / "model-symbol.json"
    capsys.readouterr()
    argv = ["verify", str(symbol), "--against", str(out / "onnx" / "model.onnx")]
    assert main([*argv, "--data", str(synthetic_root), "--images", "8"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["package", str(out), "--out", str(tmp_path / "pkg")]) == 0
    with tarfile.open(tmp_path / "pkg" / "model.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"model-symbol.json", "model-0000.params", "synset.txt"} <= names
    assert "mxnet" not in sys.modules


def test_errors_from_the_toolchain_keep_their_type(synthetic_root: Path, tmp_path: Path) -> None:
    from caltech_edge.config import TrainConfig
    from caltech_edge.train import train

    config = TrainConfig(framework="gluon", arch="resnt18", weights="none", epochs=1)
    with pytest.raises(UnknownNameError, match="Did you mean 'resnet18'"):
        train(config, data=synthetic_root, out=tmp_path / "bad", progress=False)
