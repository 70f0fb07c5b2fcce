"""TrainConfig: defaults, validation, SageMaker hyperparameters as written, files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caltech_edge.config import (
    AugmentationType,
    Optimizer,
    Precision,
    Strategy,
    TrainConfig,
)
from caltech_edge.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEEPLENS = REPO / "examples" / "hyperparameters" / "deeplens_caltech256.json"


def test_sagemaker_string_values_are_parsed():
    cfg = TrainConfig.from_sagemaker(
        {
            "num_layers": "50",
            "use_pretrained_model": "1",
            "image_shape": "3,299,299",
            "epochs": "12",
            "learning_rate": "0.001",
            "lr_scheduler_step": "10,20",
            "lr_scheduler_factor": "0.5",
            "mini_batch_size": "64",
            "optimizer": "nag",
            "momentum": "0.8",
            "weight_decay": "0.0005",
            "augmentation_type": "crop_color",
            "precision_dtype": "float16",
            "early_stopping": "true",
            "early_stopping_patience": "3",
            "early_stopping_min_epochs": "4",
            "early_stopping_tolerance": "0.02",
            "num_classes": "257",
            "num_training_samples": "16180",
            "top_k": "3",
            "beta_1": "0.85",
            "resize": "330",
            "use_weighted_loss": "1",
            "multi_label": "0",
            "kv_store": "dist_sync",
        }
    )
    assert cfg.arch == "resnet50" and cfg.weights == "imagenet"
    assert cfg.image_size == 299 and cfg.resize_size == 330
    assert (cfg.epochs, cfg.batch_size, cfg.learning_rate) == (12, 64, 0.001)
    assert cfg.lr_scheduler_step == (10, 20) and cfg.lr_scheduler_factor == 0.5
    assert cfg.optimizer is Optimizer.NAG and cfg.momentum == 0.8 and cfg.weight_decay == 0.0005
    assert cfg.augmentation is AugmentationType.CROP_COLOR
    assert cfg.precision is Precision.FP16
    es = cfg.early_stopping
    assert es.enabled and es.patience == 3 and es.min_epochs == 4
    assert es.min_delta == 0.02 and es.relative
    assert cfg.num_classes == 257 and cfg.num_training_samples == 16180 and cfg.top_k == 3
    assert cfg.beta1 == 0.85 and cfg.weighted_loss
    assert any("kv_store" in note for note in cfg.notes)


def test_sagemaker_defaults_apply():
    cfg = TrainConfig.from_sagemaker({"num_classes": "10", "num_training_samples": "100"})
    assert cfg.arch == "resnet152"  # SageMaker's default num_layers
    assert cfg.weights == "none"  # use_pretrained_model defaults to 0
    assert (cfg.epochs, cfg.learning_rate, cfg.batch_size) == (30, 0.1, 32)
    assert cfg.strategy is Strategy.FULL


@pytest.mark.parametrize(
    ("hp", "needle"),
    [
        ({"mini_batch": "32"}, "Did you mean 'mini_batch_size'"),
        ({"optimizer": "adamw"}, "Valid values: sgd, adam, rmsprop, nag"),
        ({"num_layers": "19"}, "18, 34, 50, 101, 152"),
        ({"image_shape": "3,224"}, "3,224,224"),
        ({"image_shape": "1,224,224"}, "3 channels"),
        ({"image_shape": "3,224,200"}, "square"),
        ({"epochs": "ten"}, "epochs must be an integer"),
        ({"learning_rate": "-1"}, "learning_rate must be > 0"),
        ({"use_pretrained_model": "maybe"}, "boolean"),
        ({"precision_dtype": "bfloat16"}, "float32, float16"),
        ({"augmentation_type": "crop_colour"}, "Did you mean 'crop_color'"),
        ({"multi_label": "1"}, "multi_label"),
        ({"lr_scheduler_step": "20,10"}, "increasing"),
    ],
)
def test_sagemaker_bad_input_names_the_fix(hp, needle):
    with pytest.raises(ConfigError, match=None) as info:
        TrainConfig.from_sagemaker(hp)
    assert needle in str(info.value)


def test_replace_validates_and_coerces():
    cfg = TrainConfig()
    new = cfg.replace(epochs="3", lr_scheduler_step="2", **{"early_stopping.patience": "2"})
    assert new.epochs == 3 and new.lr_scheduler_step == (2,) and new.early_stopping.patience == 2
    assert cfg.epochs == 10  # frozen original untouched
    with pytest.raises(ConfigError, match="Did you mean 'learning_rate'"):
        cfg.replace(learning_rat=0.1)
    with pytest.raises(ConfigError, match="cache_features needs strategy 'head'"):
        cfg.replace(cache_features=True)
    with pytest.raises(ConfigError, match="Did you mean 'resnet50'"):
        cfg.replace(arch="resnet05")
    # SageMaker names work as overrides too
    assert cfg.replace(num_layers="34", image_shape="3,64,64").arch == "resnet34"
    with pytest.raises(AttributeError):
        cfg.epochs = 5  # type: ignore[misc]


def test_roundtrip_and_files(tmp_path):
    cfg = TrainConfig(arch="squeezenet1_1", strategy="head", cache_features=True, seed=7)
    path = cfg.save(tmp_path / "config.json")
    assert TrainConfig.from_file(path) == cfg
    assert TrainConfig.from_dict(json.loads(path.read_text())) == cfg
    wrapped = tmp_path / "job.json"
    wrapped.write_text(json.dumps({"HyperParameters": {"num_layers": "18", "epochs": "2"}}))
    assert TrainConfig.from_file(wrapped).arch == "resnet18"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json"):
        TrainConfig.from_file(bad)
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps({"arch": "resnet18", "epochz": 3}))
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        TrainConfig.from_file(mixed)


def test_deeplens_case_study_file_loads():
    cfg = TrainConfig.from_file(DEEPLENS)
    assert cfg.arch == "resnet152" and cfg.epochs == 50 and cfg.learning_rate == 0.001
    assert cfg.batch_size == 64 and cfg.optimizer is Optimizer.SGD
    assert cfg.lr_scheduler_factor == 0.1 and cfg.lr_scheduler_step == (10, 20)
    assert cfg.num_training_samples == 16180 and cfg.num_classes == 257
    small = cfg.replace(num_layers=18, epochs=1, image_shape="3,32,32", use_pretrained_model=0)
    assert (small.arch, small.epochs, small.image_size, small.weights) == (
        "resnet18",
        1,
        32,
        "none",
    )


def test_min_crop_area_reaches_the_training_crops(synthetic_root):
    """``min_crop_area`` is checked, then sets the random crop of the training images only."""
    from caltech_edge.data.datasets import open_dataset
    from caltech_edge.train.data import torch_dataset

    with pytest.raises(ConfigError, match="min_crop_area must be in"):
        TrainConfig(augmentation="crop", min_crop_area=1.5)
    with pytest.raises(ConfigError, match="augmentation 'none' there is no crop"):
        TrainConfig(min_crop_area=0.5)
    dataset = open_dataset(synthetic_root)
    default = torch_dataset(TrainConfig(augmentation="crop"), dataset, [0, 1], train=True)
    assert default.augment is not None and default.augment.crop_scale == (0.25, 1.0)
    cfg = TrainConfig(augmentation="crop_color", min_crop_area="0.5")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # travels in config.json (resume)
    mild = torch_dataset(cfg, dataset, [0, 1], train=True)
    assert mild.augment is not None and mild.augment.crop_scale == (0.5, 1.0)
    assert mild.augment.hue == 36.0  # the rest of the type's spec is unchanged
    assert torch_dataset(cfg, dataset, [0, 1], train=False).augment is None
