"""The one typed training config, shared by the torch and Gluon trainers.

``TrainConfig`` is frozen: every change goes through :meth:`TrainConfig.replace`, which
coerces and validates exactly like construction, so a config that exists is a valid one.
It also reads Amazon SageMaker image-classification hyperparameters *as they are written*
(all-string values included, e.g. ``"image_shape": "3,224,224"``), because that is the
format the DeepLens case study and most tutorials publish; see
:meth:`TrainConfig.from_sagemaker` and ``docs/training.md`` for the mapping table.

This module imports neither torch nor mxnet: the Gluon trainer and the CLI use it too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models.architectures import depths, names_for
from ._coerce import bad_key, coerce_fields, did_you_mean, plain, to_bool
from .enums import (
    AugmentationType,
    EarlyStoppingMetric,
    Framework,
    Optimizer,
    Precision,
    Scheduler,
    Strategy,
)
from .sagemaker import SAGEMAKER_KEYS, looks_like_sagemaker, translate_sagemaker

# derived from the one architecture table (caltech_edge.models.architectures)
TORCH_ARCH_NAMES = names_for(Framework.TORCH)
RESNET_DEPTHS = depths("resnet")

__all__ = [
    "RESNET_DEPTHS",
    "SAGEMAKER_KEYS",
    "TORCH_ARCH_NAMES",
    "AugmentationType",
    "EarlyStopping",
    "EarlyStoppingMetric",
    "Framework",
    "Optimizer",
    "Precision",
    "Scheduler",
    "Strategy",
    "TrainConfig",
]


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when the monitored metric has not improved for ``patience`` epochs.

    ``min_delta`` is an absolute improvement, or relative to the best value when
    ``relative`` is true (SageMaker's ``early_stopping_tolerance`` is relative).
    No stop happens before ``min_epochs`` epochs.
    """

    enabled: bool = False
    patience: int = 5
    min_delta: float = 0.0
    relative: bool = False
    min_epochs: int = 1
    metric: EarlyStoppingMetric = EarlyStoppingMetric.TOP1

    def __post_init__(self) -> None:
        coerce_fields(self, "early_stopping.")
        if self.patience < 1:
            raise ConfigError(f"early_stopping.patience must be >= 1, got {self.patience}")
        if self.min_delta < 0:
            raise ConfigError(f"early_stopping.min_delta must be >= 0, got {self.min_delta}")
        if self.min_epochs < 1:
            raise ConfigError(f"early_stopping.min_epochs must be >= 1, got {self.min_epochs}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def coerce_value(cls, value: Any, name: str) -> EarlyStopping:
        """An EarlyStopping from itself, a mapping of its fields, or a bool ("true")."""
        if isinstance(value, EarlyStopping):
            return value
        fields = [f.name for f in dataclasses.fields(cls)]
        if isinstance(value, Mapping):
            unknown = set(value) - set(fields)
            if unknown:
                raise bad_key(sorted(unknown)[0], fields, name)
            return cls(**value)
        return cls(enabled=to_bool(value, name))


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data path and the output directory.

    ``num_classes=None`` takes the number of classes from the dataset. Values may be
    given as strings (``"0.01"``, ``"10,20"``, ``"true"``); they are coerced and checked.
    """

    framework: Framework = Framework.TORCH
    arch: str = "resnet18"
    weights: str = "imagenet"  # "imagenet" (local cache only) | "none" | path to a state dict
    num_classes: int | None = None
    image_size: int = 224
    resize_size: int = 0  # shorter side before the center crop; 0 = image_size / 0.875
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.01
    backbone_lr_mult: float = 0.1  # backbone lr = learning_rate * this (strategies full/last_k)
    optimizer: Optimizer = Optimizer.SGD
    momentum: float = 0.9
    weight_decay: float = 1e-4
    beta1: float = 0.9  # adam
    beta2: float = 0.999  # adam
    eps: float = 1e-8  # adam, rmsprop
    gamma: float = 0.9  # rmsprop decay (torch's alpha)
    scheduler: Scheduler = Scheduler.STEP
    lr_scheduler_step: tuple[int, ...] = ()
    lr_scheduler_factor: float = 0.1
    warmup_epochs: float = 0.0  # linear warmup from lr/10, may be fractional
    label_smoothing: float = 0.0
    weighted_loss: bool = False  # class weights inversely proportional to frequency
    strategy: Strategy = Strategy.FULL
    unfreeze_stages: int = 1  # k for strategy last_k
    cache_features: bool = False  # head strategy only: run the frozen backbone once
    augmentation: AugmentationType = AugmentationType.NONE
    min_crop_area: float = 0.0  # smallest area fraction of the random crop; 0 = the type's 0.25
    precision: Precision = Precision.FP32
    channels_last: bool = False
    seed: int = 0
    deterministic: bool = True  # torch.use_deterministic_algorithms(warn_only)
    train_per_class: int = 30
    val_per_class: int = 0
    test_per_class: int | None = None  # cap on test images per class (None = all the rest)
    split_file: str | None = None  # a split.json (Split.save) to reuse instead of make_split
    drop_clutter: bool = False  # Caltech-256: leave out 257.clutter
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    top_k: int = 5
    num_workers: int = 0
    checkpoint_frequency: int = 0  # keep checkpoints/epoch-NNNN.pt every N epochs; 0 = only last
    num_training_samples: int | None = None  # informational (SageMaker requires it)
    notes: tuple[str, ...] = ()  # what was accepted but ignored (e.g. SageMaker kv_store)

    def __post_init__(self) -> None:
        coerce_fields(self, "")
        self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        if self.framework == Framework.TORCH and self.arch not in TORCH_ARCH_NAMES:
            raise ConfigError(
                f"Unknown torch arch {self.arch!r}.{did_you_mean(self.arch, TORCH_ARCH_NAMES)} "
                f"Valid choices: {', '.join(TORCH_ARCH_NAMES)}."
            )
        need(bool(self.arch), "arch must not be empty")
        need(bool(self.weights), "weights must be 'imagenet', 'none' or a path to a state dict")
        need(
            self.num_classes is None or self.num_classes >= 2,
            f"num_classes must be >= 2 (or unset to take it from the data), got {self.num_classes}",
        )
        need(self.image_size >= 16, f"image_size must be >= 16 px, got {self.image_size}")
        need(
            self.resize_size == 0 or self.resize_size >= self.image_size,
            f"resize_size ({self.resize_size}) must be 0 or >= image_size ({self.image_size})",
        )
        need(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(self.backbone_lr_mult >= 0, "backbone_lr_mult must be >= 0")
        need(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1 and beta2 must be in [0, 1)")
        need(self.eps > 0, f"eps must be > 0, got {self.eps}")
        need(0 <= self.gamma < 1, f"gamma must be in [0, 1), got {self.gamma}")
        need(
            0 < self.lr_scheduler_factor <= 1,
            f"lr_scheduler_factor must be in (0, 1], got {self.lr_scheduler_factor}",
        )
        steps = self.lr_scheduler_step
        need(
            all(s >= 1 for s in steps) and list(steps) == sorted(set(steps)),
            f"lr_scheduler_step must be increasing epoch numbers >= 1, got {list(steps)}",
        )
        need(self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        need(
            0 <= self.label_smoothing < 1,
            f"label_smoothing must be in [0, 1), got {self.label_smoothing}",
        )
        need(self.unfreeze_stages >= 0, "unfreeze_stages must be >= 0")
        need(
            not self.cache_features or self.strategy == Strategy.HEAD,
            "cache_features needs strategy 'head' (only a frozen backbone can be cached); "
            f"got strategy {self.strategy.value!r}",
        )
        need(
            not self.cache_features or self.augmentation == AugmentationType.NONE,
            "cache_features computes each image's features once, so augmentation must be "
            f"'none' (got {self.augmentation.value!r}); drop one of the two",
        )
        need(
            0 <= self.min_crop_area <= 1,
            f"min_crop_area must be in [0, 1] (0 = the augmentation's default), "
            f"got {self.min_crop_area}",
        )
        need(
            not self.min_crop_area or self.augmentation != AugmentationType.NONE,
            "min_crop_area sets the random crop of an augmentation; with augmentation 'none' "
            "there is no crop: set augmentation to crop (or another type) or drop min_crop_area",
        )
        need(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        need(self.train_per_class >= 0, "train_per_class must be >= 0")
        need(self.val_per_class >= 0, "val_per_class must be >= 0")
        need(
            self.test_per_class is None or self.test_per_class >= 1,
            "test_per_class must be >= 1 (or unset for all the rest)",
        )
        need(self.top_k >= 1, f"top_k must be >= 1, got {self.top_k}")
        need(self.num_workers >= 0, "num_workers must be >= 0")
        need(self.checkpoint_frequency >= 0, "checkpoint_frequency must be >= 0")

    # ------------------------------------------------------------------ conversion
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (enums as strings, tuples as lists)."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> TrainConfig:
        """Our own format (``to_dict`` output); unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: a config must be a JSON object")
        return cls().replace(**dict(data))

    def replace(self, **overrides: Any) -> TrainConfig:
        """A validated copy with ``overrides`` applied.

        Keys are this class's fields, ``early_stopping.<field>`` (or
        ``early_stopping_<field>``), or SageMaker hyperparameter names (``num_layers``,
        ``mini_batch_size``, ``image_shape``, ...), which are translated. String values
        are coerced, so ``--set key=value`` from a command line works unchanged.
        """
        ours: dict[str, Any] = {}
        sagemaker: dict[str, Any] = {}
        es = dict(self.early_stopping.to_dict())
        es_touched = False
        es_fields = {f.name for f in dataclasses.fields(EarlyStopping)}
        for key, value in overrides.items():
            sub = None
            for prefix in ("early_stopping.", "early_stopping_"):
                if key.startswith(prefix) and key[len(prefix) :] in es_fields:
                    sub = key[len(prefix) :]
            if sub is not None:
                es[sub], es_touched = value, True
            elif key == "early_stopping":
                if isinstance(value, EarlyStopping):
                    es, es_touched = value.to_dict(), True
                elif isinstance(value, Mapping):
                    unknown = set(value) - es_fields
                    if unknown:
                        raise bad_key(sorted(unknown)[0], es_fields, "early_stopping")
                    es.update(value)
                    es_touched = True
                else:  # SageMaker style "true"/"false"
                    es["enabled"], es_touched = value, True
            elif key in _FIELD_NAMES:
                ours[key] = value
            elif key in SAGEMAKER_KEYS:
                sagemaker[key] = value
            else:
                raise bad_key(key, _FIELD_NAMES | set(SAGEMAKER_KEYS) | _ES_KEYS, "config")
        if sagemaker:
            translated, notes = translate_sagemaker(sagemaker, defaults=False)
            for key, value in translated.items():
                if key == "early_stopping":
                    es.update(value)
                    es_touched = True
                else:
                    ours.setdefault(key, value)
            if notes:
                ours["notes"] = (*self.notes, *notes)
        if es_touched:
            ours["early_stopping"] = EarlyStopping(**es)
        return dataclasses.replace(self, **ours)

    @classmethod
    def from_sagemaker(
        cls, hp: Mapping[str, Any], *, source: str = "<hyperparameters>"
    ) -> TrainConfig:
        """Read SageMaker image-classification hyperparameters exactly as written.

        SageMaker's own defaults apply to what is not given (``num_layers`` 152,
        ``use_pretrained_model`` 0 -> train from scratch, ``epochs`` 30, ``learning_rate``
        0.1, ``mini_batch_size`` 32, ``lr_scheduler_factor`` 0.1, ``top_k`` 5); the
        network is fine-tuned as a whole (strategy ``full``), as SageMaker does.
        Unknown keys and bad values raise :class:`ConfigError` listing the valid ones.
        """
        if not isinstance(hp, Mapping):
            raise ConfigError(f"{source}: hyperparameters must be a JSON object")
        for key in hp:
            if key not in SAGEMAKER_KEYS:
                raise bad_key(key, SAGEMAKER_KEYS, "SageMaker hyperparameter")
        try:
            translated, notes = translate_sagemaker(dict(hp), defaults=True)
            es = translated.pop("early_stopping", {})
            cfg = cls(**translated, notes=tuple(notes))
            return cfg.replace(**{f"early_stopping.{k}": v for k, v in es.items()}) if es else cfg
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Load our JSON (``config.json`` of a run) or a SageMaker hyperparameters JSON.

        A SageMaker file may be the bare ``{"epochs": "30", ...}`` object SageMaker writes
        to ``/opt/ml/input/config/hyperparameters.json`` or wrapped as
        ``{"HyperParameters": {...}}`` as in a CreateTrainingJob request.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config file ({exc})") from exc
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config file must hold a JSON object")
        for wrapper in ("HyperParameters", "hyperparameters"):
            if isinstance(data.get(wrapper), dict):
                return cls.from_sagemaker(data[wrapper], source=str(path))
        if looks_like_sagemaker(data):
            return cls.from_sagemaker(data, source=str(path))
        try:
            return cls.from_dict(data, source=str(path))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def save(self, path: str | Path) -> Path:
        from .._io import atomic_write_text

        return atomic_write_text(path, self.to_json())

    # ------------------------------------------------------------------ derived
    @property
    def resnet_depth(self) -> int | None:
        digits = "".join(ch for ch in self.arch.split("_")[0] if ch.isdigit())
        return int(digits) if self.arch.startswith("resnet") and digits else None


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(TrainConfig))
_ES_KEYS = frozenset(f"early_stopping.{f.name}" for f in dataclasses.fields(EarlyStopping))
