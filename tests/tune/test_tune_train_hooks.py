"""What tuning adds to training: the per-epoch hook, features reused across runs, and a
SageMaker tuning request driving a real (tiny) search through the Python API."""

from __future__ import annotations

import json

import pytest
from tune_helpers import REPO, TINY

from caltech_edge.config import TrainConfig
from caltech_edge.rundir import RunDir
from caltech_edge.train import evaluate, train
from caltech_edge.train.features import feature_cache

optuna = pytest.importorskip("optuna")


class Stop(Exception):
    pass


def test_on_epoch_reports_each_epoch_and_can_stop_the_run(tune_data, tmp_path):
    seen = []

    def hook(entry):
        seen.append(entry)
        if entry["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        train(
            TrainConfig(**TINY), data=tune_data, out=tmp_path / "run", progress=False, on_epoch=hook
        )
    assert [e["epoch"] for e in seen] == [1, 2]
    assert all(isinstance(e["val_loss"], float) and 0 <= e["val_top1"] <= 1 for e in seen)
    history = json.loads(RunDir(tmp_path / "run").metrics.read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]  # the hook runs after the epoch is saved


def test_cached_features_are_reused_across_runs(tune_data, tmp_path):
    cfg = TrainConfig(**{**TINY, "epochs": 2}, strategy="head", cache_features=True)
    with feature_cache(tmp_path / "features") as cache:
        first = train(cfg, data=tune_data, out=tmp_path / "a", progress=False)
        files = sorted(cache.glob("features-*.pt"))
        assert len(files) == 3  # train, val, test
        stamps = [f.stat().st_mtime_ns for f in files]
        train(cfg.replace(learning_rate=0.05), data=tune_data, out=tmp_path / "b", progress=False)
        assert sorted(cache.glob("features-*.pt")) == files
        assert [f.stat().st_mtime_ns for f in files] == stamps  # read, not rewritten
    train(cfg, data=tune_data, out=tmp_path / "c", progress=False)  # outside: no cache used
    assert len(list((tmp_path / "features").glob("*.pt"))) == 3
    # test metrics computed on cached features == the full model on the decoded images
    cached_test = json.loads(first.metrics.read_text())["test"]
    full = evaluate(first, data=tune_data, split="test")
    assert cached_test["images"] == full["images"] == 4 * 2
    assert cached_test["top1"] == pytest.approx(full["top1"])
    assert cached_test["loss"] == pytest.approx(full["loss"], rel=1e-4)


def test_sagemaker_request_drives_a_search(tune_data, tmp_path):
    from caltech_edge.tune import tune

    tiny = {**TINY, "epochs": 2, "num_classes": "none"}
    result = tune(
        data=tune_data,
        space=REPO / "examples" / "tuning" / "sagemaker_tuning_job.json",
        out=tmp_path / "out",
        trials=2,
        workers=1,
        overrides=tiny,
        storage=f"sqlite:///{tmp_path / 'study.db'}",  # an RDB URL (with Optuna's heartbeat)
        progress=False,
    )
    assert (tmp_path / "study.db").is_file() and not (tmp_path / "out" / "study.journal").exists()
    done = result.counts.get("COMPLETE", 0) + result.counts.get("PRUNED", 0)
    assert done == 2 and result.best is not None
    best_cfg = TrainConfig.from_file(tmp_path / "out" / "best" / "hyperparameters.json")
    params = result.best["hyperparameters"]
    assert best_cfg.batch_size == params["mini_batch_size"] and 8 <= best_cfg.batch_size <= 64
    assert best_cfg.optimizer.value == params["optimizer"]
    assert best_cfg.arch == "squeezenet1_1" and best_cfg.image_size == 32
    assert "TrainingJobDefinition.RoleArn ignored (AWS job setting)" in result.to_dict()["notes"]
    assert "trial" in result.summary() and "best: trial" in result.summary()
