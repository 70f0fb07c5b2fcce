"""The CLI: the DeepLens case-study SageMaker hyperparameters run with overrides."""

from __future__ import annotations

import json
from pathlib import Path

from caltech_edge.card import ModelCard
from caltech_edge.cli import main
from caltech_edge.config import TrainConfig

DEEPLENS = Path(__file__).resolve().parents[2] / "examples/hyperparameters/deeplens_caltech256.json"


def test_deeplens_hyperparameters_run_with_overrides(synthetic_root, tmp_path, capsys):
    out = tmp_path / "deeplens"
    code = main(
        [
            "train",
            "--data",
            str(synthetic_root),
            "--out",
            str(out),
            "--hyperparameters",
            str(DEEPLENS),
            "--set",
            "num_layers=18",
            "--set",
            "epochs=1",
            "--set",
            "image_shape=3,32,32",
            "--set",
            "use_pretrained_model=0",
            "--set",
            "num_classes=none",
            "--set",
            "mini_batch_size=8",
            "--train-per-class",
            "4",
            "--set",
            "checkpoint_frequency=1",
            "--no-progress",
            "--json",
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["epochs_completed"] == 1 and printed["test"]["images"] == 4 * 12
    cfg = TrainConfig.from_file(out / "config.json")
    # The case study's values survive; only the overrides changed.
    assert (cfg.arch, cfg.epochs, cfg.image_size, cfg.batch_size) == ("resnet18", 1, 32, 8)
    assert cfg.learning_rate == 0.001 and cfg.lr_scheduler_step == (10, 20)
    assert cfg.augmentation.value == "crop_color_transform" and cfg.num_classes == 4
    assert (out / "checkpoints" / "epoch-0001.pt").is_file()
    assert ModelCard.load(out).preprocess.image_size == 32


def test_cli_errors_are_typed_and_helpful(synthetic_root, tmp_path, capsys):
    base = ["train", "--data", str(synthetic_root), "--out", str(tmp_path / "x")]
    assert main([*base, "--set", "optimiser=adam"]) == 2
    assert "Did you mean 'optimizer'" in capsys.readouterr().err
    assert main([*base, "--set", "num_classes=7", "--weights", "none"]) == 2
    assert "has 4 classes" in capsys.readouterr().err
    # ImageNet weights are not in the local cache here, and nothing is downloaded
    assert main([*base, "--arch", "resnet18", "--train-per-class", "4"]) == 2
    assert "never downloads" in capsys.readouterr().err
