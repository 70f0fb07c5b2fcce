"""``caltech-edge train --arch efficientnet_lite0 --weights imagenet`` end to end (tiny)."""

from __future__ import annotations

import pytest


def test_train_effnet_from_package_weights_carries_its_preprocessing(synthetic_root, tmp_path):
    import torch

    from caltech_edge.cli import main
    from caltech_edge.rundir import RunDir, load_torch_model

    out = tmp_path / "run"
    argv = ["train", "--data", str(synthetic_root), "--out", str(out)]
    argv += ["--arch", "efficientnet_lite0", "--weights", "imagenet", "--image-size", "64"]
    argv += ["--strategy", "head", "--cache-features", "--epochs", "2", "--lr", "0.01"]
    argv += ["--train-per-class", "8", "--no-progress"]
    assert main(argv) == 0
    model, card = load_torch_model(RunDir(out))
    assert card.arch == "efficientnet_lite0" and card.preprocess.image_size == 64
    assert card.preprocess.mean == pytest.approx((127 / 255,) * 3)
    assert card.preprocess.interpolation == "linear"
    assert model.classifier.out_features == 4
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 4)
