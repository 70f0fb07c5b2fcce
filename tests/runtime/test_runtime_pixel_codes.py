"""uint8 crop -> integer input codes in one pass, code for code what the float path gives."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from caltech_edge.data.transforms import PreprocessSpec, normalize
from caltech_edge.runtime.backends._pixel_codes import PixelCodes

SIZE = 48
IMAGENET = PreprocessSpec(image_size=SIZE)  # per-channel mean/std: three different maps
LITE = PreprocessSpec(image_size=SIZE, mean=(0.498,) * 3, std=(0.502,) * 3)


def _quantizer(scale: float, zero: int, dtype, rounding=np.rint):
    info = np.iinfo(dtype)

    def quantize(flat: np.ndarray, dst: np.ndarray) -> None:
        dst[...] = np.clip(rounding(flat / scale) + zero, info.min, info.max).astype(dtype)

    return quantize


def _float_path(crop: np.ndarray, spec: PreprocessSpec, quantize, dtype) -> np.ndarray:
    chw = normalize(crop, spec).reshape(3, -1)
    out = np.empty(chw.shape, dtype)
    quantize(chw, out)
    return out.reshape(3, SIZE, SIZE).transpose(1, 2, 0)


@pytest.mark.parametrize(
    "spec,scale,zero,dtype",
    [(IMAGENET, 0.0186, -14, np.int8), (LITE, 0.0079, 0, np.int8), (IMAGENET, 0.0171, 114, np.uint8)],
)  # fmt: skip
def test_one_pass_gives_the_float_paths_codes(spec, scale, zero, dtype):
    quantize = _quantizer(scale, zero, dtype)
    codes = PixelCodes(spec, quantize, np.dtype(dtype), scale, zero)
    assert codes.fast  # the affine pass reproduced the table on every value at every position
    rng = np.random.default_rng(0)
    for crop in (rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
                 np.full((SIZE, SIZE, 3), 255, np.uint8), np.zeros((SIZE, SIZE, 3), np.uint8)):  # fmt: skip
        out = np.empty((SIZE, SIZE, 3), np.uint8)
        codes.write(crop, out)
        np.testing.assert_array_equal(out.view(dtype), _float_path(crop, spec, quantize, dtype))


def test_a_float_path_the_affine_pass_cannot_reproduce_falls_back_to_the_table():
    """Rounding down (not to nearest) is not the affine map: the table is used, and exact."""
    quantize = _quantizer(0.0186, -14, np.int8, rounding=np.floor)
    codes = PixelCodes(IMAGENET, quantize, np.dtype(np.int8), 0.0186, -14)
    assert not codes.fast
    crop = np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    out = np.empty_like(crop)
    codes.write(crop, out)
    np.testing.assert_array_equal(out, cv2.LUT(crop, codes.table))
    np.testing.assert_array_equal(out.view(np.int8), _float_path(crop, IMAGENET, quantize, np.int8))
