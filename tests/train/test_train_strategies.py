"""Head-only training leaves the backbone bit-identical; cached features give the same head."""

from __future__ import annotations

import json

import pytest
import torch

from caltech_edge.card import ModelCard
from caltech_edge.config import TrainConfig
from caltech_edge.models.torchvision_zoo import create_model, head_parameter_names
from caltech_edge.rundir import load_torch_model
from caltech_edge.train import train


@pytest.fixture(scope="module")
def start_weights(tmp_path_factory):
    torch.manual_seed(123)
    model = create_model("resnet18", 4, weights=None)
    # Non-trivial BatchNorm statistics: a "frozen" backbone must not update them.
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 32, 32) * 3 + 1)
    path = tmp_path_factory.mktemp("weights") / "start.pt"
    torch.save(model.state_dict(), path)
    return path


def _head_cfg(weights, **kw):
    return TrainConfig(
        arch="resnet18",
        weights=str(weights),
        strategy="head",
        image_size=32,
        epochs=3,
        batch_size=8,
        learning_rate=0.05,
        train_per_class=8,
        seed=3,
        **kw,
    )


@pytest.fixture(scope="module")
def head_runs(synthetic_root, start_weights, tmp_path_factory):
    plain = train(
        _head_cfg(start_weights),
        data=synthetic_root,
        out=tmp_path_factory.mktemp("head"),
        progress=False,
    )
    cached = train(
        _head_cfg(start_weights, cache_features=True),
        data=synthetic_root,
        out=tmp_path_factory.mktemp("cached"),
        progress=False,
    )
    return plain, cached


def test_head_only_keeps_backbone_bit_identical(head_runs, start_weights):
    start = torch.load(start_weights, weights_only=True)
    head = set(head_parameter_names("resnet18"))
    for run in head_runs:
        final = torch.load(run.weights, weights_only=True)
        assert final.keys() == start.keys()
        for key, value in start.items():
            if key in head:
                assert not torch.equal(final[key], value), f"{key} did not train"
            else:
                assert torch.equal(final[key], value), f"{key} changed in head-only training"


def test_cached_features_train_the_same_head(head_runs):
    plain, cached = (torch.load(r.weights, weights_only=True) for r in head_runs)
    for key in head_parameter_names("resnet18"):
        torch.testing.assert_close(cached[key], plain[key], rtol=1e-4, atol=1e-5)
    h_plain, h_cached = (json.loads(r.metrics.read_text())["history"] for r in head_runs)
    for a, b in zip(h_plain, h_cached):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)


def test_injected_model_keeps_card_extra(synthetic_root, tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet18", 4, weights=None)
    card = ModelCard(arch="resnet18", class_names=("a", "b", "c", "d"), extra={"pruned": True})
    cfg = TrainConfig(
        arch="resnet18",
        weights="none",
        strategy="last_k",
        unfreeze_stages=1,
        precision="bf16",  # CPU autocast path
        channels_last=True,
        image_size=32,
        epochs=1,
        batch_size=8,
        train_per_class=4,
    )
    run = train(
        cfg, data=synthetic_root, out=tmp_path / "ft", model=model, card=card, progress=False
    )
    saved = ModelCard.load(run.card)
    assert saved.extra["pruned"] is True and saved.extra["strategy"] == "last_k"
    assert saved.extra["training_precision"] == "bf16"
    history = json.loads(run.metrics.read_text())["history"]
    assert history[0]["train_images"] == 16 and history[0]["train_loss"] > 0
    state = torch.load(run.weights, weights_only=True)
    assert isinstance(state, dict) and "fc.weight" in state
    reloaded, _ = load_torch_model(run)
    assert torch.equal(reloaded.fc.weight, model.fc.weight.detach())
