"""Training augmentation in numpy/OpenCV: random (resized) crops, flips, rotations,
translations, shear/aspect changes and colour jitter, all driven by one seeded generator.

The DeepLens case study trained with random rotations, random crops, translations and RGB
mean centering; the last one is the normalisation in :mod:`caltech_edge.data.transforms`,
applied after this. SageMaker's image-classification ``augmentation_type`` maps on as
documented there (:meth:`AugmentSpec.from_sagemaker`):

* ``crop``: random crop and horizontal flip;
* ``crop_color``: plus random values in [-36, 36], [-50, 50], [-50, 50] added to
  hue, saturation and lightness (HSL);
* ``crop_color_transform``: plus rotation up to 10 degrees, shear up to 0.1 and aspect
  ratio changes up to 0.25.

Everything random comes from the ``numpy.random.Generator`` passed in, so a generator
seeded with (seed, epoch, index) gives the same image in any process or worker order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError
from .transforms import PreprocessSpec, center_crop, normalize, resize_shorter

KINDS = ("none", "crop", "crop_color", "crop_color_transform", "custom")


@dataclass(frozen=True)
class AugmentSpec:
    """What to randomise. All zero/False (``kind="none"``) means no augmentation."""

    kind: str = "none"
    flip: bool = False
    crop_scale: tuple[float, float] = (1.0, 1.0)  # area fraction of a random resized crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # its aspect-ratio range
    rotation: float = 0.0  # max degrees, both ways
    translate: float = 0.0  # max shift as a fraction of the side
    shear: float = 0.0  # max shear factor
    aspect: float = 0.0  # max relative aspect change
    hue: float = 0.0  # max hue shift in degrees (0..360 scale)
    saturation: float = 0.0  # max HSL saturation shift (0..255 scale)
    lightness: float = 0.0  # max HSL lightness shift (0..255 scale)
    brightness: float = 0.0  # max relative brightness change (0.2 = x0.8..x1.2)
    contrast: float = 0.0  # max relative contrast change

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(
                f"augmentation kind must be one of {', '.join(KINDS)}, got {self.kind!r}"
            )
        lo, hi = (float(v) for v in self.crop_scale)
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        rlo, rhi = (float(v) for v in self.crop_ratio)
        if not 0 < rlo <= rhi:
            raise ConfigError(f"crop_ratio must satisfy 0 < lo <= hi, got {self.crop_ratio}")
        object.__setattr__(self, "crop_scale", (lo, hi))
        object.__setattr__(self, "crop_ratio", (rlo, rhi))
        for name in (
            "rotation", "translate", "shear", "aspect", "hue",
            "saturation", "lightness", "brightness", "contrast",
        ):  # fmt: skip
            value = float(getattr(self, name))
            if value < 0:
                raise ConfigError(f"{name} must be >= 0 (a maximum magnitude), got {value}")
            object.__setattr__(self, name, value)
        if self.translate >= 0.5 or self.aspect >= 1 or self.brightness >= 1 or self.contrast >= 1:
            raise ConfigError("translate must be < 0.5 and aspect/brightness/contrast < 1")

    @property
    def enabled(self) -> bool:
        colour = self.hue or self.saturation or self.lightness or self.brightness or self.contrast
        return bool(self.flip or self.crop_scale != (1.0, 1.0) or self.geometric or colour)

    @property
    def geometric(self) -> bool:
        return bool(self.rotation or self.translate or self.shear or self.aspect)

    @classmethod
    def from_sagemaker(cls, augmentation_type: str | None, min_area: float = 0.0) -> AugmentSpec:
        """The spec for SageMaker's ``augmentation_type`` (None/"" = no augmentation).

        ``min_area`` (0 = the type's 0.25) is the smallest area fraction of the random crop
        (timm's and torchvision's ``scale`` lower bound): a higher floor augments less, for
        short fine-tunes or classes told apart by framing.
        """
        kind = (augmentation_type or "none").strip().lower()
        if kind not in KINDS or kind == "custom":
            raise ConfigError(
                f"augmentation_type must be crop, crop_color or crop_color_transform, "
                f"got {augmentation_type!r}"
            )
        if kind == "none":
            return cls()
        spec: dict[str, Any] = {"kind": kind, "flip": True, "crop_scale": (min_area or 0.25, 1.0)}
        if kind in ("crop_color", "crop_color_transform"):
            spec.update(hue=36.0, saturation=50.0, lightness=50.0)
        if kind == "crop_color_transform":
            spec.update(rotation=10.0, shear=0.1, aspect=0.25)
        return cls(**spec)

    @classmethod
    def default(cls) -> AugmentSpec:
        """The DeepLens case study's set: crops, flips, rotations, translations, mild colour."""
        return cls(
            kind="custom", flip=True, crop_scale=(0.35, 1.0), rotation=15.0, translate=0.1,
            brightness=0.2, contrast=0.2, saturation=25.0,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["crop_scale"], out["crop_ratio"] = list(self.crop_scale), list(self.crop_ratio)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentSpec:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _uniform(rng: np.random.Generator, magnitude: float) -> float:
    return float(rng.uniform(-magnitude, magnitude)) if magnitude else 0.0


def _affine(img: np.ndarray, spec: AugmentSpec, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    angle = math.radians(_uniform(rng, spec.rotation))
    shear = _uniform(rng, spec.shear)
    stretch = 1.0 + _uniform(rng, spec.aspect)
    sx, sy = math.sqrt(stretch), 1.0 / math.sqrt(stretch)
    tx, ty = _uniform(rng, spec.translate) * w, _uniform(rng, spec.translate) * h
    c, s = math.cos(angle), math.sin(angle)
    linear = np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([sx, sy])
    center = np.array([w / 2.0, h / 2.0])
    offset = center - linear @ center + np.array([tx, ty])
    matrix = np.hstack([linear, offset[:, None]]).astype(np.float32)
    return cv2.warpAffine(
        img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )


def _random_crop_box(
    h: int, w: int, spec: AugmentSpec, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box (10 tries, then the largest centred box)."""
    area = h * w
    log_lo, log_hi = math.log(spec.crop_ratio[0]), math.log(spec.crop_ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*spec.crop_scale)
        ratio = math.exp(rng.uniform(log_lo, log_hi))
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            return top, left, ch, cw
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def _colour(img: np.ndarray, spec: AugmentSpec, rng: np.random.Generator) -> np.ndarray:
    if spec.hue or spec.saturation or spec.lightness:
        hls = cv2.cvtColor(img, cv2.COLOR_RGB2HLS).astype(np.int16)
        hls[..., 0] = (hls[..., 0] + round(_uniform(rng, spec.hue) / 2.0)) % 180  # OpenCV H: 0..179
        hls[..., 1] += round(_uniform(rng, spec.lightness))
        hls[..., 2] += round(_uniform(rng, spec.saturation))
        img = cv2.cvtColor(np.clip(hls, 0, 255).astype(np.uint8), cv2.COLOR_HLS2RGB)
    if spec.brightness or spec.contrast:
        gain = 1.0 + _uniform(rng, spec.brightness)
        contrast = 1.0 + _uniform(rng, spec.contrast)
        mean = float(img.mean())
        out = (img.astype(np.float32) - mean) * contrast + mean
        img = np.clip(out * gain, 0, 255).astype(np.uint8)
    return img


def augment(
    rgb: np.ndarray,
    spec: AugmentSpec,
    rng: np.random.Generator,
    *,
    size: int | None = None,
    resize_size: int | None = None,
) -> np.ndarray:
    """Return an augmented ``size`` x ``size`` RGB uint8 image (``size`` default: shorter side).

    The image is first resized so its shorter side is ``resize_size`` (default ``size``
    / 0.875, the eval resize) so every later step works on few pixels.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"augment expects RGB uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    size = int(size or min(rgb.shape[:2]))
    img = resize_shorter(rgb, int(resize_size or round(size / 0.875)))
    if spec.geometric:
        img = _affine(img, spec, rng)
    if spec.crop_scale != (1.0, 1.0):
        top, left, ch, cw = _random_crop_box(img.shape[0], img.shape[1], spec, rng)
        patch = img[top : top + ch, left : left + cw]
        flag = cv2.INTER_AREA if ch > size and cw > size else cv2.INTER_LINEAR
        img = cv2.resize(patch, (size, size), interpolation=flag)
    else:
        img = center_crop(img, size)
    if spec.flip and rng.random() < 0.5:
        img = img[:, ::-1]
    return np.ascontiguousarray(_colour(np.ascontiguousarray(img), spec, rng))


def augment_and_normalize(
    rgb: np.ndarray, spec: AugmentSpec, preprocess_spec: PreprocessSpec, rng: np.random.Generator
) -> np.ndarray:
    """Augment, then normalise exactly as :func:`~caltech_edge.data.transforms.preprocess`."""
    out = augment(
        rgb, spec, rng, size=preprocess_spec.image_size, resize_size=preprocess_spec.resize_size
    )
    return normalize(out, preprocess_spec)
