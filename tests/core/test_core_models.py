"""torchvision builders: head replacement, offline weights and backbone transfer."""

from __future__ import annotations

import pytest
import torch

from caltech_edge.errors import CheckpointError, UnknownNameError, WeightsNotFoundError
from caltech_edge.models import TORCH_ARCHS, arch_for_depth, create_model, load_state_dict_file


@pytest.mark.parametrize("arch", sorted(TORCH_ARCHS))
def test_every_arch_builds_with_a_new_head(arch):
    model = create_model(arch, 7, weights=None).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 7)


def test_num_layers_maps_like_sagemaker():
    assert arch_for_depth("152") == "resnet152"
    with pytest.raises(UnknownNameError, match="Valid choices: 101, 152, 18, 34, 50"):
        arch_for_depth(20)


def test_imagenet_weights_never_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="never downloads") as err:
        create_model("resnet18", 3, weights="imagenet")
    assert str(tmp_path) in str(err.value)


def test_checkpoint_with_other_head_loads_backbone(tmp_path):
    source = create_model("resnet18", 10, weights=None)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    target = create_model("resnet18", 3, weights=path)
    assert torch.equal(target.conv1.weight, source.conv1.weight)
    assert target.fc.out_features == 3
    same_head = create_model("resnet18", 10, weights=path)
    assert torch.equal(same_head.fc.weight, source.fc.weight)


def test_wrong_architecture_and_corrupt_file_are_named(tmp_path):
    path = tmp_path / "squeeze.pt"
    torch.save(create_model("squeezenet1_1", 4, weights=None).state_dict(), path)
    with pytest.raises(CheckpointError, match="does not match architecture 'resnet18'"):
        create_model("resnet18", 4, weights=path)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"corrupt\.pt: cannot read"):
        load_state_dict_file(corrupt)


def test_real_squeezenet_backbone_transfers(squeezenet_weights):
    state = load_state_dict_file(squeezenet_weights)
    model = create_model("squeezenet1_1", 5, weights=squeezenet_weights)
    assert torch.equal(model.features[0].weight, state["features.0.weight"])
    assert model.classifier[1].out_channels == 5
