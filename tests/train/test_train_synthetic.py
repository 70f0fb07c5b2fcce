"""End to end on synthetic data: a tiny ResNet-18 learns it; the run dir holds everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from caltech_edge.card import ModelCard
from caltech_edge.cli import main
from caltech_edge.config import TrainConfig
from caltech_edge.data.synth import synthesize
from caltech_edge.rundir import RunDir, load_torch_model
from caltech_edge.train import evaluate, train

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth-train")
    synthesize(root, classes=4, per_class=28, size=40, seed=1)
    return root


@pytest.fixture(scope="module")
def run(data_root, tmp_path_factory) -> RunDir:
    cfg = TrainConfig(
        arch="resnet18",
        weights="none",
        image_size=32,
        epochs=8,
        batch_size=16,
        learning_rate=0.05,
        scheduler="cosine",
        warmup_epochs=1,
        label_smoothing=0.05,
        train_per_class=20,
        val_per_class=2,
        seed=0,
    )
    return train(cfg, data=data_root, out=tmp_path_factory.mktemp("run"), progress=False)


def test_synthetic_trains_to_high_accuracy(run):
    metrics = json.loads(run.metrics.read_text())
    assert metrics["test"]["images"] == 4 * 6
    assert metrics["test"]["top1"] >= 0.9, metrics["test"]
    assert metrics["epochs_completed"] == 8 and len(metrics["history"]) == 8
    assert metrics["selection"] == "best epoch chosen on validation"
    first, last = metrics["history"][0], metrics["history"][-1]
    assert last["train_loss"] < first["train_loss"]
    assert all(h["images_per_s"] > 0 and h["val_top1"] is not None for h in metrics["history"])


def test_run_directory_is_complete(run, data_root):
    card = ModelCard.load(run.card)
    assert card.framework == "torch" and card.arch == "resnet18"
    assert card.preprocess.image_size == 32
    assert card.class_names[0] == "001.synthetic-red-circle" and card.num_classes == 4
    assert card.metrics["top1"] >= 0.9 and card.extra["synthetic_data"] is True
    assert run.classes.read_text().split() == list(card.class_names)
    config = TrainConfig.from_file(run.config)
    assert config.num_classes == 4 and config.epochs == 8
    split = json.loads(run.split.read_text())
    assert split["sizes"] == {"train": 80, "val": 8, "test": 24}
    for name in ("curves.png", "confusion.png"):
        assert (run.plots / name).read_bytes()[:8] == PNG
    state = torch.load(run.weights, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model, _ = load_torch_model(run)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 4)
    assert torch.load(run.last, weights_only=True)["state"]["epoch"] == 8


def test_evaluate_api_and_cli_json(run, data_root, capsys):
    api = evaluate(run, data=data_root)
    metrics = json.loads(run.metrics.read_text())
    assert api["top1"] == pytest.approx(metrics["test"]["top1"])
    assert main(["evaluate", str(run.root), "--data", str(data_root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"top1", "top5", "images", "per_class", "confusion"} <= set(out)
    assert out["images"] == 24 and out["top1"] == pytest.approx(api["top1"])
    assert set(out["per_class"]) == set(ModelCard.load(run.card).class_names)
    assert main(["evaluate", str(run.root), "--data", str(data_root), "--split", "val"]) == 0
    assert "top-1" in capsys.readouterr().out
    assert main(["evaluate", str(run.root), "--data", str(data_root), "--split", "nope"]) == 2


def test_finished_run_resumes_without_training_again(run, data_root):
    before = run.weights.read_bytes()
    cfg = TrainConfig.from_file(run.config)
    train(cfg, data=data_root, out=run.root, progress=False)
    assert run.weights.read_bytes() == before
