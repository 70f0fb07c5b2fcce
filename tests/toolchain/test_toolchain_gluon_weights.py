"""torchvision weights initialise the same Gluon network, across the process boundary: the
core (torch) converts the state dict to .npz, the mxnet toolchain (no torch) builds Gluon
from it; both must compute the same logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from caltech_edge.errors import CheckpointError
from caltech_edge.frameworks.gluon_models import torchvision_state_to_npz
from caltech_edge.toolchains import run as in_toolchain

LOGITS = "caltech_edge.frameworks.gluon_remote:logits"


@pytest.mark.parametrize(
    ("tv_arch", "gluon"), [("squeezenet1_1", "squeezenet1.1"), ("resnet18", "resnet18_v1")]
)
def test_torchvision_checkpoints_initialise_the_same_gluon_network(
    tmp_path: Path, tv_arch: str, gluon: str
) -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model(tv_arch, weights=None, num_classes=6).eval()
    for module in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), tmp_path / "tv.pth")
    npz = torchvision_state_to_npz(tmp_path / "tv.pth", tmp_path / "tv.npz")
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = in_toolchain("mxnet", LOGITS, arch=gluon, num_classes=6, weights=str(npz), batch=x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(CheckpointError, match="layer-for-layer"):
        in_toolchain("mxnet", LOGITS, arch="resnet50_v1", num_classes=6, weights=str(npz),
                     batch=x[:1, :, :32, :32], image_size=32)  # fmt: skip


def test_gluon_training_from_a_torchvision_pth(synthetic_root: Path, tmp_path: Path) -> None:
    """``--framework gluon --weights tv.pth`` still works although the toolchain has no torch."""
    from caltech_edge.config import TrainConfig
    from caltech_edge.train import train

    torch.manual_seed(0)
    model = torchvision.models.get_model("squeezenet1_1", weights=None, num_classes=4)
    torch.save(model.state_dict(), tmp_path / "tv.pth")
    config = TrainConfig(framework="gluon", arch="squeezenet1_1", weights=str(tmp_path / "tv.pth"),
                         epochs=1, image_size=32, batch_size=16, train_per_class=4,
                         val_per_class=0)  # fmt: skip
    run = train(config, data=synthetic_root, out=tmp_path / "run", progress=False)
    assert run.symbol.is_file() and run.params.is_file()
    assert (run.root / "init-weights.npz").is_file()


@pytest.mark.shared_data
def test_real_squeezenet_weights_predict_like_torch_on_real_images(
    squeezenet_weights: Path, sample_root: Path, tmp_path: Path
) -> None:
    """The real ImageNet + Caltech-256 SqueezeNet, run in Gluon, agrees with torchvision."""
    from caltech_edge.data.datasets import open_dataset
    from caltech_edge.data.loader import iter_batches
    from caltech_edge.data.transforms import PreprocessSpec
    from caltech_edge.models.torchvision_zoo import create_model

    ds = open_dataset(sample_root)
    x, _ = next(iter_batches(ds, range(0, len(ds), 27), PreprocessSpec(), batch_size=20))
    model = create_model("squeezenet1_1", 256, weights=squeezenet_weights).eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    npz = torchvision_state_to_npz(squeezenet_weights, tmp_path / "sq.npz")
    got = in_toolchain("mxnet", LOGITS, arch="squeezenet1.1", num_classes=256,
                       weights=str(npz), batch=x, image_size=224)  # fmt: skip
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert (got.argmax(1) == expected.argmax(1)).all()
