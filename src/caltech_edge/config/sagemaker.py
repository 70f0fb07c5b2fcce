"""SageMaker image-classification hyperparameters -> TrainConfig keyword arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..models.architectures import arch_for_depth, depths
from ._coerce import bad_key, did_you_mean, to_bool, to_int
from .enums import Precision

#: Every hyperparameter of SageMaker's built-in image-classification algorithm.
SAGEMAKER_KEYS = (
    "augmentation_type",
    "beta_1",
    "beta_2",
    "checkpoint_frequency",
    "early_stopping",
    "early_stopping_min_epochs",
    "early_stopping_patience",
    "early_stopping_tolerance",
    "epochs",
    "eps",
    "gamma",
    "image_shape",
    "kv_store",
    "learning_rate",
    "lr_scheduler_factor",
    "lr_scheduler_step",
    "mini_batch_size",
    "momentum",
    "multi_label",
    "num_classes",
    "num_layers",
    "num_training_samples",
    "optimizer",
    "precision_dtype",
    "resize",
    "top_k",
    "use_pretrained_model",
    "use_weighted_loss",
    "weight_decay",
)
_SAGEMAKER_ONLY = {
    "mini_batch_size",
    "num_layers",
    "image_shape",
    "use_pretrained_model",
    "augmentation_type",
    "precision_dtype",
    "beta_1",
    "beta_2",
    "early_stopping_tolerance",
    "early_stopping_min_epochs",
    "kv_store",
    "multi_label",
    "use_weighted_loss",
    "resize",
}
_SAGEMAKER_DEFAULTS = {
    "num_layers": "152",
    "use_pretrained_model": "0",
    "epochs": "30",
    "learning_rate": "0.1",
    "mini_batch_size": "32",
    "lr_scheduler_factor": "0.1",
    "top_k": "5",
    "optimizer": "sgd",
    "momentum": "0.9",
    "weight_decay": "0.0001",
}
_SAGEMAKER_RENAME = {
    "epochs": "epochs",
    "learning_rate": "learning_rate",
    "lr_scheduler_factor": "lr_scheduler_factor",
    "lr_scheduler_step": "lr_scheduler_step",
    "mini_batch_size": "batch_size",
    "momentum": "momentum",
    "weight_decay": "weight_decay",
    "optimizer": "optimizer",
    "top_k": "top_k",
    "num_classes": "num_classes",
    "num_training_samples": "num_training_samples",
    "beta_1": "beta1",
    "beta_2": "beta2",
    "eps": "eps",
    "gamma": "gamma",
    "augmentation_type": "augmentation",
    "checkpoint_frequency": "checkpoint_frequency",
    "resize": "resize_size",
    "use_weighted_loss": "weighted_loss",
}
_PRECISION_DTYPES = {"float32": Precision.FP32, "float16": Precision.FP16}


def looks_like_sagemaker(data: Mapping[str, Any]) -> bool:
    if any(k in _SAGEMAKER_ONLY for k in data):
        return True
    # all-string values for numeric keys is how SageMaker writes hyperparameters.json
    return bool(data) and all(isinstance(v, str) for v in data.values()) and "arch" not in data


def translate_sagemaker(hp: dict[str, Any], *, defaults: bool) -> tuple[dict[str, Any], list[str]]:
    """SageMaker names/values -> TrainConfig keyword arguments (values still raw)."""
    if defaults:
        hp = {**_SAGEMAKER_DEFAULTS, **hp}
    out: dict[str, Any] = {}
    notes: list[str] = []
    es: dict[str, Any] = {}
    for key, value in hp.items():
        if key in _SAGEMAKER_RENAME:
            out[_SAGEMAKER_RENAME[key]] = value
        elif key == "num_layers":
            depth = to_int(value, "num_layers")
            if depth not in depths():
                raise ConfigError(
                    f"num_layers must be one of {', '.join(map(str, depths()))}, got {value!r}"
                )
            out["arch"] = arch_for_depth(depth)
        elif key == "use_pretrained_model":
            out["weights"] = "imagenet" if to_bool(value, key) else "none"
        elif key == "image_shape":
            out["image_size"] = _image_shape(value)
        elif key == "precision_dtype":
            text = str(value).strip().lower()
            if text not in _PRECISION_DTYPES:
                raise ConfigError(
                    f"precision_dtype must be one of float32, float16, got {value!r}"
                    f"{did_you_mean(text, _PRECISION_DTYPES)}"
                )
            out["precision"] = _PRECISION_DTYPES[text]
        elif key == "early_stopping":
            es["enabled"] = value
        elif key == "early_stopping_patience":
            es["patience"] = value
        elif key == "early_stopping_min_epochs":
            es["min_epochs"] = value
        elif key == "early_stopping_tolerance":
            es["min_delta"], es["relative"] = value, True
        elif key == "multi_label":
            if to_bool(value, key):
                raise ConfigError(
                    "multi_label=1 is not supported: caltech-edge trains single-label "
                    "classifiers (one class per image); use multi_label=0"
                )
        elif key == "kv_store":
            notes.append(
                f"kv_store={value!r} ignored: distributed training here is torchrun "
                "(see docs/training.md)"
            )
        else:  # pragma: no cover - SAGEMAKER_KEYS and the branches above agree
            raise bad_key(key, SAGEMAKER_KEYS, "SageMaker hyperparameter")
    if es:
        out["early_stopping"] = es
    return out, notes


def _image_shape(value: Any) -> int:
    parts = value if isinstance(value, list | tuple) else str(value).replace(" ", "").split(",")
    try:
        dims = [int(p) for p in parts]
    except (TypeError, ValueError):
        dims = []
    if len(dims) != 3 or dims[0] != 3:
        raise ConfigError(
            f"image_shape must be 'channels,height,width' with 3 channels, e.g. '3,224,224'; "
            f"got {value!r}"
        )
    if dims[1] != dims[2]:
        raise ConfigError(
            f"image_shape {value!r}: only square inputs are supported (height == width)"
        )
    return dims[1]
