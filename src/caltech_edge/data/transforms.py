"""The one preprocessing definition: resize shorter side, center crop, RGB, mean/std, CHW.

Training, evaluation, calibration, export verification and the device runtime all call
:func:`preprocess`, so a model sees the same pixels everywhere. It uses only numpy and
OpenCV (no torch) and stays Python 3.8-compatible because the device runtime imports it.

Channel order is converted in exactly one place, :func:`as_rgb`: OpenCV frames are BGR,
decoded dataset images are RGB, and the caller says which one it holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Sequence, Tuple

import cv2
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNEL_ORDERS = ("RGB", "BGR")

#: The longest accepted side ratio (long/short) of a decoded image or camera frame.
#: Resizing the short side to ``resize_size`` multiplies the long side: a 300000x8 image
#: would become 256x9.6M (7.4 GB) before the crop. The decoder refuses longer images from
#: their header. Real photos (panoramas included) stay far below: the widest of the 9,678
#: Caltech images is 3.9:1.
MAX_ASPECT = 20.0

#: :func:`resize_shorter` refuses (before allocating) any array whose resized size would
#: exceed this many pixels (48 MB as RGB uint8): the bound for arrays that did not come
#: through the decoder. A 20:1 image resized to a 600 px short side is 7.2 Mpx.
MAX_RESIZED_PIXELS = 16_000_000


def default_resize(image_size: int) -> int:
    """The shorter-side size before the crop, 256 for 224 (the classic 0.875 crop ratio)."""
    return round(image_size / 0.875)


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything needed to turn an image into the model's input tensor.

    ``channel_order`` is the order the *model* expects (RGB for every torchvision and
    Gluon model zoo network); the input's order is given to :func:`preprocess` separately.
    """

    image_size: int = 224
    resize_size: int = 0  # 0 = default_resize(image_size)
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    interpolation: str = "area"  # "area" matches antialiased torchvision Resize when shrinking

    def __post_init__(self) -> None:
        if int(self.image_size) < 8:
            raise ValueError("image_size must be >= 8, got {!r}".format(self.image_size))
        object.__setattr__(self, "image_size", int(self.image_size))
        resize = int(self.resize_size) or default_resize(self.image_size)
        if resize < self.image_size:
            raise ValueError(
                "resize_size ({}) must be >= image_size ({}): the crop is taken from the "
                "resized image".format(resize, self.image_size)
            )
        object.__setattr__(self, "resize_size", resize)
        for name in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 3:
                raise ValueError(
                    "{} needs 3 values (one per channel), got {!r}".format(name, value)
                )
            object.__setattr__(self, name, value)
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0, got {!r}".format(self.std))
        order = str(self.channel_order).upper()
        if order not in CHANNEL_ORDERS:
            raise ValueError(
                "channel_order must be one of {}, got {!r}".format(CHANNEL_ORDERS, order)
            )
        object.__setattr__(self, "channel_order", order)
        if self.interpolation not in _INTERPOLATION:
            raise ValueError(
                "interpolation must be one of {}, got {!r}".format(
                    sorted(_INTERPOLATION), self.interpolation
                )
            )

    @property
    def input_shape(self) -> Tuple[int, int, int, int]:
        return (1, 3, self.image_size, self.image_size)

    def to_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "PreprocessSpec":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def _scale_bias(self) -> Tuple[np.ndarray, np.ndarray]:
        std = np.asarray(self.std, dtype=np.float32)
        scale = (1.0 / (255.0 * std)).astype(np.float32)
        bias = (-np.asarray(self.mean, dtype=np.float32) / std).astype(np.float32)
        if self.channel_order == "BGR":
            scale, bias = scale[::-1].copy(), bias[::-1].copy()
        return scale, bias


_INTERPOLATION = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


def as_rgb(image: np.ndarray, input_order: str = "RGB") -> np.ndarray:
    """Return an HxWx3 uint8 RGB view/copy of ``image`` (the only channel-order conversion).

    Accepts HxW and HxWx1 grayscale, HxWx3 and HxWx4 (alpha dropped) in ``input_order``.
    """
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise ValueError("expected a non-empty numpy image, got {!r}".format(type(image).__name__))
    if image.dtype != np.uint8:
        raise ValueError(
            "expected a uint8 image, got dtype {}; convert it first (e.g. cv2.convertScaleAbs)".format(
                image.dtype
            )
        )
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(
            "expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {}".format(image.shape)
        )
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    order = input_order.upper()
    if order not in CHANNEL_ORDERS:
        raise ValueError(
            "input_order must be one of {}, got {!r}".format(CHANNEL_ORDERS, input_order)
        )
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if order == "BGR" else cv2.COLOR_RGBA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if order == "BGR" else image


def resize_shorter(image: np.ndarray, size: int, interpolation: str = "area") -> np.ndarray:
    """Resize so the shorter side is ``size``; the long side is truncated as torchvision does.

    Refuses (ValueError, before allocating) a result above :data:`MAX_RESIZED_PIXELS`:
    a long thin image's resized long side is otherwise unbounded (an aspect-ratio bomb).
    """
    h, w = image.shape[:2]
    if min(h, w) == size:
        return image
    if h <= w:
        new_h, new_w = size, int(size * w / h)
    else:
        new_h, new_w = int(size * h / w), size
    if new_h * new_w > MAX_RESIZED_PIXELS:
        raise ValueError(
            "image {}x{} resized to a {} px short side would be {}x{} = {:,} pixels (limit "
            "{:,}): its aspect ratio is too long; crop it first".format(
                w, h, size, new_w, new_h, new_h * new_w, MAX_RESIZED_PIXELS
            )
        )
    shrinking = new_h < h
    flag = _INTERPOLATION[interpolation] if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (new_w, new_h), interpolation=flag)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Center crop to ``size`` x ``size`` with torchvision's rounding; pads nothing."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise ValueError("image {}x{} is smaller than the crop {}".format(w, h, size))
    top = round((h - size) / 2.0)
    left = round((w - size) / 2.0)
    return image[top : top + size, left : left + size]


_HAS_BLOB = hasattr(cv2, "dnn") and hasattr(cv2.dnn, "blobFromImageWithParams")
# OpenCV 5 moved the layout constants from ``cv2.dnn`` to the top-level module.
_NCHW = getattr(cv2.dnn, "DNN_LAYOUT_NCHW", None) if hasattr(cv2, "dnn") else None
if _NCHW is None:
    _NCHW = getattr(cv2, "DNN_LAYOUT_NCHW", None)
_HAS_BLOB = _HAS_BLOB and _NCHW is not None


def _normalize_blob(crop_rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """OpenCV >= 4.8's fused convert/subtract/scale/HWC->CHW (about 2x the numpy path)."""
    params = cv2.dnn.Image2BlobParams()
    params.scalefactor = tuple(1.0 / (255.0 * s) for s in spec.std)
    params.mean = tuple(255.0 * m for m in spec.mean)
    params.size = (crop_rgb.shape[1], crop_rgb.shape[0])
    params.ddepth = cv2.CV_32F
    params.datalayout = _NCHW
    return cv2.dnn.blobFromImageWithParams(crop_rgb, params)[0]


def normalize(crop_rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 3xHxW in the model's channel order, in one fused pass."""
    if _HAS_BLOB and spec.channel_order == "RGB" and crop_rgb.dtype == np.uint8:
        return _normalize_blob(crop_rgb, spec)
    scale, bias = spec._scale_bias()
    if spec.channel_order == "BGR":
        crop_rgb = crop_rgb[..., ::-1]
    out = crop_rgb.astype(np.float32)
    out *= scale
    out += bias
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def crop_rgb(image: np.ndarray, spec: PreprocessSpec, *, input_order: str = "RGB") -> np.ndarray:
    """The geometry half of :func:`preprocess`: the uint8 RGB ``image_size`` square it keeps.

    A runtime whose input is integer (a full-integer LiteRT file) maps these pixels to its
    input codes in one pass instead of normalizing to float and quantizing back.
    """
    rgb = as_rgb(image, input_order)
    resized = resize_shorter(rgb, spec.resize_size, spec.interpolation)
    return center_crop(resized, spec.image_size)


def preprocess(image: np.ndarray, spec: PreprocessSpec, *, input_order: str = "RGB") -> np.ndarray:
    """Turn one decoded image (any size, gray/RGB/BGR/alpha) into the model's CHW float32 input."""
    return normalize(crop_rgb(image, spec, input_order=input_order), spec)


def preprocess_batch(
    images: Sequence[np.ndarray], spec: PreprocessSpec, *, input_order: str = "RGB"
) -> np.ndarray:
    """Stack :func:`preprocess` over ``images`` into an NCHW float32 batch."""
    if len(images) == 0:
        raise ValueError("preprocess_batch needs at least one image")
    return np.stack([preprocess(img, spec, input_order=input_order) for img in images])


def denormalize(chw: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Invert :func:`normalize`: float32 CHW (model order) -> uint8-range float HxWx3 RGB."""
    scale, bias = spec._scale_bias()
    hwc = np.asarray(chw, dtype=np.float32).transpose(1, 2, 0)
    rgb = (hwc - bias) / scale
    if spec.channel_order == "BGR":
        rgb = rgb[..., ::-1]
    return rgb
