"""Unstructured sparsity (exact, smaller zipped) and structured channel removal that
really shrinks layers, saves as a plain state dict, reloads and exports."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from caltech_edge.compress.prune import (
    count_macs,
    count_parameters,
    prune,
    reshape_to_state_dict,
    sparsity,
    state_dict_bytes,
    zipped_size,
)
from caltech_edge.compress.prune_run import prune_run, step_ratios
from caltech_edge.errors import ConfigError
from caltech_edge.models.torchvision_zoo import create_model
from caltech_edge.rundir import load_torch_model

SIZE = 32


@pytest.mark.parametrize("arch", ["resnet18", "squeezenet1_1"])
def test_structured_pruning_removes_channels_and_reloads(arch):
    torch.manual_seed(0)
    model = create_model(arch, 5, weights=None).eval()
    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    stats = prune(model, amount=0.5, structured=True, arch=arch, image_size=SIZE)
    assert stats["macs_before"] / stats["macs_after"] >= 1.6
    assert stats["params_before"] / stats["params_after"] >= 1.6
    pruned_widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sum(pruned_widths) < 0.7 * sum(widths)
    x = torch.randn(2, 3, SIZE, SIZE)
    assert model(x).shape == (2, 5)  # the classifier keeps its outputs
    fresh = create_model(arch, 5, weights=None)
    reshape_to_state_dict(fresh, model.state_dict())
    fresh.load_state_dict(model.state_dict(), strict=True)
    torch.testing.assert_close(fresh.eval()(x), model(x))


def test_unstructured_sparsity_is_exact_and_zips_smaller():
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", 4, weights=None)
    head = "classifier.1"
    before = state_dict_bytes(model)
    stats = prune(model, amount=0.7, arch="mobilenet_v2", image_size=SIZE)
    total = sum(
        m.weight.numel()
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and n != head
    )
    assert abs(stats["sparsity"] - 0.7) <= 1.0 / total
    assert stats["params_after"] == stats["params_before"]  # shapes unchanged
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())  # permanent
    assert float((model.get_submodule(head).weight == 0).float().mean()) < 0.05  # excluded
    after = state_dict_bytes(model)
    assert zipped_size(after) < 0.6 * zipped_size(before)
    with pytest.raises(ConfigError):
        prune(model, amount=1.5)


def test_round_to_keeps_channel_counts_simd_friendly():
    model = create_model("squeezenet1_1", 5, weights=None).eval()
    prune(model, amount=0.3, structured=True, arch="squeezenet1_1", image_size=SIZE, round_to=8)
    widths = [m.out_channels for n, m in model.named_modules()
              if isinstance(m, nn.Conv2d) and n != "classifier.1"]  # fmt: skip
    assert all(w % 8 == 0 for w in widths) and sum(widths) < 2200  # unpruned: 2,944


def test_reshape_handles_depthwise_convolutions():
    model = create_model("mobilenet_v2", 3, weights=None)
    prune(model, amount=0.3, structured=True, arch="mobilenet_v2", image_size=SIZE)
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    fresh = create_model("mobilenet_v2", 3, weights=None)
    reshape_to_state_dict(fresh, model.state_dict())
    assert [m.groups for m in fresh.modules() if isinstance(m, nn.Conv2d)] == [
        m.groups for m in model.modules() if isinstance(m, nn.Conv2d)
    ]


def _stem_net(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1, groups=width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 3),
    )  # fmt: skip


def test_a_channels_last_run_reloads_contiguous_and_lowers_to_executorch(tmp_path):
    """A run trained with channels_last saves channels_last weights; a pruned model rebuilt
    from them must not inherit those strides (ExecuTorch's XNNPACK lowering failed on the
    pruned Caltech-101 Lite0's stem conv: 'ChannelsLastTaggedReshapePass')."""
    import numpy as np

    from caltech_edge.card import ModelCard
    from caltech_edge.data.calibration import CalibrationReader
    from caltech_edge.data.transforms import PreprocessSpec
    from caltech_edge.export.executorch import quantize_executorch

    torch.manual_seed(0)
    pruned = _stem_net(8).eval()  # the pruned widths, as trained with channels_last
    state = pruned.to(memory_format=torch.channels_last).state_dict()
    assert not state["0.weight"].is_contiguous()
    fresh = _stem_net(16)  # the architecture at its original width
    reshape_to_state_dict(fresh, state)
    fresh.load_state_dict(state, strict=True)
    assert all(p.is_contiguous() for p in fresh.parameters())
    card = ModelCard(arch="stem", class_names=("a", "b", "c"),
                     preprocess=PreprocessSpec(image_size=SIZE))  # fmt: skip
    rng = np.random.default_rng(0)
    calib = CalibrationReader.from_arrays(
        [rng.standard_normal((1, 3, SIZE, SIZE)).astype(np.float32) for _ in range(4)]
    )
    path = quantize_executorch(fresh.eval(), card, tmp_path / "model.pte", calibration=calib)
    assert path.stat().st_size > 0


def test_step_ratios_give_the_total_amount():
    keep = 1.0
    for r in step_ratios(0.5, 3):
        keep *= 1 - r
    assert keep == pytest.approx(0.5)


@pytest.fixture(scope="module")
def pruned_run(tiny_run, synthetic_root, tmp_path_factory):
    """Two structured 50% steps with one fine-tune epoch each, through the CLI and the real
    trainer (``caltech-edge prune RUN --structured --steps 2 --finetune-epochs 1``)."""
    from caltech_edge.cli import main
    from caltech_edge.rundir import RunDir

    out = tmp_path_factory.mktemp("pruned")
    argv = ["prune", str(tiny_run.root), "--amount", "0.5", "--structured", "--steps", "2", "--round-to", "4",
            "--finetune-epochs", "1", "--data", str(synthetic_root),
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return RunDir(out)


def test_prune_run_saves_a_plain_run_that_reloads(pruned_run, tiny_model, tiny_run):
    stats = json.loads((pruned_run.root / "prune.json").read_text())
    assert stats["macs_ratio"] >= 1.6 and stats["params_ratio"] >= 1.6
    assert len(stats["history"]) == 2 and all("finetuned_top1" in h for h in stats["history"])
    state = torch.load(pruned_run.weights, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert (pruned_run.root / "split.json").is_file() and (pruned_run.root / "step1").is_dir()
    from caltech_edge.compress.prune_run import FINETUNE_LR_FRACTION
    from caltech_edge.config import TrainConfig

    base_lr = (
        TrainConfig.from_file(tiny_run.config).learning_rate
        if tiny_run.config.is_file()
        else TrainConfig().learning_rate
    )
    finetune_lr = TrainConfig.from_file(pruned_run.root / "step1" / "config.json").learning_rate
    assert finetune_lr == pytest.approx(base_lr * FINETUNE_LR_FRACTION)  # fine-tune, not retrain
    model, card = load_torch_model(pruned_run)
    assert card.extra["pruned"]["structured"] is True and card.extra["pruned"]["round_to"] == 4
    assert all(m.out_channels % 4 == 0 for m in model.modules() if isinstance(m, nn.Conv2d))
    original, _ = tiny_model
    assert count_parameters(model) < count_parameters(original) / 1.6
    assert count_macs(model, SIZE) < count_macs(original, SIZE) / 1.6
    assert model.conv1.out_channels < original.conv1.out_channels
    assert model.fc.out_features == original.fc.out_features


def test_pruned_run_exports_to_every_format_and_verifies(pruned_run, synthetic_root, tmp_path):
    from caltech_edge.export.pipeline import export

    result = export(
        pruned_run,
        formats=("onnx", "mxnet", "openvino"),
        out=tmp_path,
        data=synthetic_root,
        verify_images=16,
    )
    assert set(result.artifacts) >= {"onnx", "mxnet", "openvino"}
    assert result.passed and all(r.passed for r in result.reports.values())


def test_unstructured_prune_run_and_refusals(tiny_run, tmp_path):
    out = prune_run(tiny_run, out=tmp_path / "u", amount=0.6, progress=False)
    stats = json.loads((out.root / "prune.json").read_text())
    assert stats["sparsity"] == pytest.approx(0.6, abs=1e-4)
    assert stats["after"]["zipped_bytes"] < 0.75 * stats["before"]["zipped_bytes"]
    model, _ = load_torch_model(out)
    assert sparsity(model, exclude=("fc",)) == pytest.approx(0.6, abs=1e-4)
    with pytest.raises(ConfigError, match="data"):
        prune_run(tiny_run, out=tmp_path / "v", amount=0.5, finetune_epochs=1)
    with pytest.raises(ConfigError, match="differ"):
        prune_run(tiny_run, out=tiny_run.root, amount=0.5)
