"""The closed vocabularies of the training config (string enums) and known architectures."""

from __future__ import annotations

from enum import StrEnum, auto


class Framework(StrEnum):
    """The members of the framework registry (caltech_edge.frameworks.base.FRAMEWORKS);
    ``auto()`` gives the lower-case name, and a test keeps the two in step."""

    TORCH = auto()
    GLUON = auto()


class Strategy(StrEnum):
    """What is trained: only the new head, the last k stages + head, or everything."""

    HEAD = "head"
    LAST_K = "last_k"
    FULL = "full"


class Optimizer(StrEnum):
    SGD = "sgd"
    ADAM = "adam"
    RMSPROP = "rmsprop"
    NAG = "nag"  # SGD with Nesterov momentum, as SageMaker names it


class Scheduler(StrEnum):
    STEP = "step"  # multiply by lr_scheduler_factor at each epoch in lr_scheduler_step
    COSINE = "cosine"
    NONE = "none"


class Precision(StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"  # torch.autocast bfloat16 (fast on CPUs with AMX / avx512_bf16)
    FP16 = "fp16"  # torch.autocast float16 (GPUs; on a CPU it is slow but correct)
    AUTO = "auto"  # bf16 where the CPU has native bf16, else fp32


class AugmentationType(StrEnum):
    """SageMaker's ``augmentation_type`` values (``none`` = resize + center crop only)."""

    NONE = "none"
    CROP = "crop"
    CROP_COLOR = "crop_color"
    CROP_COLOR_TRANSFORM = "crop_color_transform"


class EarlyStoppingMetric(StrEnum):
    TOP1 = "top1"  # validation top-1 (train top-1 when there is no validation split)
    LOSS = "loss"
