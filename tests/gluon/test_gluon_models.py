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


@pytest.mark.parametrize(
    ("tv_arch", "gluon"), [("squeezenet1_1", "squeezenet1.1"), ("resnet18", "resnet18_v1")]
)
def test_torchvision_checkpoints_initialise_the_same_gluon_network(
    tmp_path: Path, tv_arch: str, gluon: str
) -> None:
    torch = pytest.importorskip("torch")
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(tv_arch, weights=None, num_classes=6).eval()
    for module in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), tmp_path / "tv.pth")
    net = create_gluon_model(gluon, 6, weights=tmp_path / "tv.pth", image_size=64)
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net(mx.nd.array(x)).asnumpy(), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(CheckpointError, match="layer-for-layer"):
        create_gluon_model("resnet50_v1", 6, weights=tmp_path / "tv.pth", image_size=32)


@pytest.mark.shared_data
def test_real_squeezenet_weights_predict_like_torch_on_real_images(
    squeezenet_weights: Path, sample_root: Path
) -> None:
    """The real ImageNet + Caltech-256 SqueezeNet, run in Gluon, agrees with torchvision."""
    from caltech_edge.data.datasets import open_dataset
    from caltech_edge.data.loader import iter_batches
    from caltech_edge.data.transforms import PreprocessSpec
    from caltech_edge.models.torchvision_zoo import create_model

    torch = pytest.importorskip("torch")
    ds = open_dataset(sample_root)
    x, _ = next(iter_batches(ds, range(0, len(ds), 27), PreprocessSpec(), batch_size=20))
    model = create_model("squeezenet1_1", 256, weights=squeezenet_weights).eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    net = create_gluon_model("squeezenet1.1", 256, weights=squeezenet_weights)
    got = net(mx.nd.array(x)).asnumpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert (got.argmax(1) == expected.argmax(1)).all()
