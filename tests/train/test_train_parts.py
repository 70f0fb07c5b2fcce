"""Optimizers, schedules, metrics and the backbone/head split, without a training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caltech_edge.config import Optimizer, Scheduler, TrainConfig
from caltech_edge.models.torchvision_zoo import create_model
from caltech_edge.train.features import split_model
from caltech_edge.train.metrics import Accumulator
from caltech_edge.train.schedules import build_optimizer, lr_factor, set_lr
from caltech_edge.train.strategy import apply_strategy, set_train_mode


@pytest.mark.parametrize("name", [o.value for o in Optimizer])
def test_every_optimizer_builds_and_steps(name):
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    before = layer.weight.detach().clone()
    cfg = TrainConfig(optimizer=name, learning_rate=0.1)
    opt = build_optimizer([{"params": list(layer.parameters()), "lr": 0.1}], cfg)
    loss = layer(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    opt.step()
    assert not torch.equal(before, layer.weight)
    if name == "nag":
        assert opt.param_groups[0]["nesterov"]


def test_step_schedule_matches_sagemaker_meaning():
    cfg = TrainConfig(scheduler="step", lr_scheduler_step="2,4", lr_scheduler_factor=0.1)
    assert [lr_factor(e, cfg) for e in (0, 1.99, 2, 3.5, 4, 9)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )


def test_cosine_with_warmup():
    cfg = TrainConfig(scheduler=Scheduler.COSINE, epochs=10, warmup_epochs=2)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(1, cfg) == pytest.approx(0.55)
    assert lr_factor(2, cfg) == pytest.approx(1.0)
    assert lr_factor(6, cfg) == pytest.approx(0.5)
    assert lr_factor(10, cfg) == pytest.approx(0.0, abs=1e-12)
    layer = torch.nn.Linear(2, 2)
    opt = build_optimizer(
        [{"params": [layer.weight], "lr": 1.0}, {"params": [layer.bias], "lr": 0.1}], cfg
    )
    set_lr(opt, 6, cfg)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 0.05])


def test_accumulator_counts():
    acc = Accumulator(3, top_k=2)
    logits = np.array([[3, 2, 1], [1, 3, 2], [3, 1, 2], [1, 2, 3]], dtype=np.float32)
    labels = np.array([0, 2, 2, 0])
    acc.update(logits, labels, loss=1.0)
    res = acc.result(["a", "b", "c"])
    assert res["images"] == 4
    assert res["top1"] == pytest.approx(0.25)  # only sample 0 right
    assert res["top2"] == pytest.approx(0.75)  # sample 3 (label 0) has it third
    assert res["top5"] == 1.0
    assert res["confusion"] == [[1, 0, 1], [0, 0, 0], [1, 1, 0]]
    assert res["per_class"]["a"] == {"accuracy": 0.5, "images": 2}
    assert res["per_class"]["b"]["accuracy"] is None
    vector = acc.state()
    other = Accumulator(3, top_k=2)
    other.load_state(vector)
    assert other.result(["a", "b", "c"]) == res


@pytest.mark.parametrize(
    "arch", ["resnet18", "squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small"]
)
def test_backbone_then_head_is_the_model(arch):
    torch.manual_seed(0)
    model = create_model(arch, 5, weights=None).eval()
    backbone, head = split_model(model, arch)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(head(backbone(x)), model(x), rtol=0, atol=0)


def test_last_k_freezes_early_stages_and_keeps_them_in_eval():
    model = create_model("resnet18", 4, weights=None)
    cfg = TrainConfig(strategy="last_k", unfreeze_stages=2, backbone_lr_mult=0.1, learning_rate=1.0)
    plan = apply_strategy(model, arch="resnet18", config=cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith(("layer3.", "layer4.", "fc.")) for n in trainable)
    assert any(n.startswith("layer3.") for n in trainable)
    assert [g["lr"] for g in plan.param_groups] == [1.0, pytest.approx(0.1)]
    set_train_mode(model, plan)
    assert not model.bn1.training and not model.layer2[0].bn1.training
    assert model.layer4[0].bn1.training and model.fc.training


def test_early_stopping_and_best_epoch_selection():
    from caltech_edge.train.loop import FitState, update_state

    cfg = TrainConfig(epochs=20).replace(
        **{
            "early_stopping.enabled": True,
            "early_stopping.patience": 2,
            "early_stopping.min_epochs": 3,
        },
    )
    state = FitState()
    flags = []
    for epoch, acc in enumerate([0.5, 0.7, 0.6, 0.65, 0.69, 0.9], start=1):
        flags.append(update_state(state, {"epoch": epoch, "val_top1": acc, "val_loss": 1.0}, cfg))
        if state.stopped_early:
            break
    assert flags == [True, True, False, False]
    assert state.stopped_early and state.epoch == 4 and state.best_epoch == 2
    # without validation metrics the train metrics decide (and metrics.json says so)
    state = FitState()
    update_state(state, {"epoch": 1, "train_top1": 0.4, "train_loss": 2.0}, cfg)
    update_state(state, {"epoch": 2, "train_top1": 0.8, "train_loss": 1.0}, cfg)
    assert state.best_epoch == 2
    rel = cfg.replace(early_stopping_tolerance="0.5")  # SageMaker's relative tolerance
    state = FitState()
    for epoch, acc in enumerate([0.4, 0.5, 0.55, 0.59], start=1):
        update_state(state, {"epoch": epoch, "val_top1": acc, "val_loss": 1.0}, rel)
    assert state.stopped_early  # +25% then +10% are below a 50% relative improvement
