"""uint8 pixels -> a full-integer model's input codes, exactly as the float path gives them.

The float path is the card's :func:`~caltech_edge.data.transforms.normalize` followed by
the input tensor's own quantization. Per channel that is an affine map of the pixel,
``code = saturate(round(a * p + b))``, so a frame's uint8 crop can go to the codes in one
pass with no float image in between. Two ways, both checked against the float path:

* a 256-entry table per channel, built by running the float path on a 0..255 ramp: exact
  by construction, but OpenCV's 3-channel ``cv2.LUT`` is slow (~90 us for 224 px here,
  more than the float path it replaces);
* ``cv2.transform`` with the 3x4 affine matrix (~20 us), plus an in-place XOR of the sign
  bit for int8 input (numpy, ~3 us; OpenCV's XOR against a 0x80 image took ~7 us). It
  rounds in its own float order, so it is used only when it reproduces the table on a
  full-size probe holding every value in every channel at every position mod 256;
  otherwise the table is used. Either way the codes are the float path's.

Python 3.8-compatible and torch-free, like the rest of the device runtime.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from ...data.transforms import PreprocessSpec, normalize

Quantize = Callable[[np.ndarray, np.ndarray], None]  # float32 planes -> integer planes


class PixelCodes:
    """Writes the codes of an ``size`` x ``size`` uint8 RGB crop into an HWC uint8 buffer."""

    def __init__(
        self, spec: PreprocessSpec, quantize: Quantize, dtype: np.dtype, scale: float, zero: int
    ) -> None:
        self.dtype = np.dtype(dtype)
        ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
        codes = np.empty((3, 256), self.dtype)
        quantize(normalize(ramp, spec).reshape(3, 256), codes)
        self.table = np.ascontiguousarray(codes.T.view(np.uint8).reshape(256, 1, 3))
        self.size = int(spec.image_size)
        self._matrix = self._affine(spec, scale, zero)
        self.fast = self._agrees()

    def _affine(self, spec: PreprocessSpec, scale: float, zero: int) -> np.ndarray:
        """The 3x4 matrix of ``code(p) = a * p + b`` (offset by 128 for int8: uint8 math)."""
        std = np.asarray(spec.std, np.float64)
        a = 1.0 / (255.0 * std * scale)
        b = -np.asarray(spec.mean, np.float64) / (std * scale) + zero
        b = b + (128.0 if self.dtype == np.int8 else 0.0)
        return np.concatenate([np.diag(a), b[:, None]], axis=1)

    def _agrees(self) -> bool:
        """Does the affine pass give the table's codes on every value at every position?"""
        n = self.size * self.size
        probe = ((np.arange(n * 3) + np.repeat(np.arange(n), 3) // 256) % 256).astype(np.uint8)
        probe = probe.reshape(self.size, self.size, 3)
        fast = np.empty_like(probe)
        self._transform(probe, fast)
        return bool(np.array_equal(fast, cv2.LUT(probe, self.table)))

    def _transform(self, image: np.ndarray, dst: np.ndarray) -> None:
        cv2.transform(image, self._matrix, dst=dst)
        if self.dtype == np.int8:  # offset codes 0..255 -> int8 bits: flip the sign bit
            np.bitwise_xor(dst, 0x80, out=dst)

    def write(self, image: np.ndarray, dst: np.ndarray) -> None:
        """``image`` (HWC uint8 RGB) -> its input codes in ``dst`` (HWC, int8 or uint8: the
        interpreter's own input buffer; the codes are written through a uint8 view)."""
        image = np.ascontiguousarray(image)
        dst = dst.view(np.uint8)
        if self.fast:
            self._transform(image, dst)
        else:
            cv2.LUT(image, self.table, dst=dst)
