"""Gluon model zoo builders: names, offline weights from MXNet's cache or a file, head swap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caltech_edge.errors import CheckpointError, UnknownNameError, WeightsNotFoundError
from caltech_edge.frameworks.gluon_models import (
    cached_params_path,
    create_gluon_model,
    gluon_arch,
    gluon_arch_for_depth,
)

mx = pytest.importorskip("mxnet")


def _params(net) -> dict[str, np.ndarray]:
    return {k: p.data().asnumpy() for k, p in net._collect_params_with_prefix().items()}


def test_arch_names_follow_sagemaker_and_torchvision_spellings() -> None:
    assert gluon_arch("resnet18") == "resnet18_v1"  # SageMaker's classifier is ResNet v1
    assert gluon_arch("resnet50", version=2) == "resnet50_v2"
    assert gluon_arch("squeezenet1_1") == "squeezenet1.1"
    assert gluon_arch("mobilenet_v2") == "mobilenetv2_1.0"
    assert gluon_arch_for_depth("152") == "resnet152_v1"
    assert gluon_arch_for_depth(34, version=2) == "resnet34_v2"
    with pytest.raises(UnknownNameError, match="resnet50_v1"):
        gluon_arch("resnet50_v3")
    with pytest.raises(UnknownNameError, match="num_layers"):
        gluon_arch_for_depth("20")


@pytest.mark.parametrize("arch", ["resnet18_v2", "squeezenet1.1", "mobilenetv2_0.5"])
def test_models_build_for_n_classes_at_small_inputs(arch: str) -> None:
    net = create_gluon_model(arch, 3, weights=None, image_size=32)
    out = net(mx.nd.ones((2, 3, 40, 40)))
    assert out.shape == (2, 3)


def test_missing_imagenet_weights_say_where_to_put_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError) as info:
        create_gluon_model("resnet18_v1", 4, image_size=32)
    message = str(info.value)
    assert str(tmp_path / "models" / "resnet18_v1-a0666292.params") in message
    assert "never downloads" in message and "--weights none" in message
    assert not (tmp_path / "models").exists()  # nothing was fetched or created


def test_cached_imagenet_weights_load_backbone_with_new_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    imagenet = create_gluon_model("resnet18_v1", 1000, weights=None, image_size=32)
    cached = cached_params_path("resnet18_v1")
    cached.parent.mkdir(parents=True)
    imagenet.save_parameters(str(cached))  # the model zoo's own file format
    net = create_gluon_model("resnet18_v1", 4, image_size=32)
    src, got = _params(imagenet), _params(net)
    assert got["output.weight"].shape == (4, 512)
    for key, value in src.items():
        if not key.startswith("output."):
            np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_exported_params_of_another_head_size_transfer(tmp_path: Path) -> None:
    source = create_gluon_model("squeezenet1.1", 7, weights=None, image_size=32)
    source.hybridize()
    source(mx.nd.zeros((1, 3, 32, 32)))
    source.export(str(tmp_path / "src"))  # symbol-style names (squeezenet0_conv0_weight)
    net = create_gluon_model("squeezenet1.1", 3, weights=tmp_path / "src-0000.params")
    src, got = _params(source), _params(net)
    assert got["output.0.weight"].shape[0] == 3
    np.testing.assert_array_equal(got["features.0.weight"], src["features.0.weight"])


def test_wrong_architecture_or_corrupt_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    other = create_gluon_model("resnet18_v1", 4, weights=None, image_size=32)
    other.save_parameters(str(tmp_path / "r18.params"))
    with pytest.raises(CheckpointError, match="resnet34_v1"):
        create_gluon_model("resnet34_v1", 4, weights=tmp_path / "r18.params", image_size=32)
    bad = tmp_path / "bad.params"
    bad.write_bytes(b"not an mxnet file")
    with pytest.raises(CheckpointError, match=r"bad\.params"):
        create_gluon_model("resnet18_v1", 4, weights=bad, image_size=32)
    with pytest.raises(CheckpointError, match="not found"):
        create_gluon_model("resnet18_v1", 4, weights=tmp_path / "nope.params", image_size=32)


# torchvision -> Gluon parity needs torch, which the mxnet toolchain does not have: those
# tests run from the core, tests/toolchain/test_toolchain_gluon_weights.py
