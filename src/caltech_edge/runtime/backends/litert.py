"""LiteRT (TFLite) backend: ``.tflite`` on a Raspberry Pi, a Coral Edge TPU or this CPU.

The interpreter comes from ``ai_edge_litert`` (the current wheel) or, on older device
images, from ``tflite_runtime``; both have the same ``Interpreter`` API. When the Edge TPU
library ``libedgetpu.so.1`` loads, it is passed as a delegate, so a model compiled by
``edgetpu_compiler`` runs its ``edgetpu-custom-op`` on the TPU; a compiled model without
the library is refused with the fix instead of failing inside ``allocate_tensors``.

Preprocessing stays the library's one path (the card's, NCHW float32); this backend adapts
its output to what the file wants: NHWC when the input is channel-last (TFLite's
convention), and int8/uint8 quantized with the *input tensor's own* scale and zero point
for full-integer models, whose int8 output is dequantized the same way. Frames of such a
model skip the float tensor altogether: :meth:`LiteRtRuntime.infer_pixels` maps the uint8
crop to the input codes in one pass (``_pixel_codes``), checked at load to give the codes
the float path would. Python
3.8-compatible and torch-free (a Pi image has neither torch nor TensorFlow).
"""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import cv2
import numpy as np

from ...card import METADATA_KEY, ModelCard
from ...errors import BackendError, MissingDependencyError
from ..base import check_batch, own_precision_only
from ._card import _fallback
from ._pixel_codes import PixelCodes
from ._tflite_meta import EDGETPU_CUSTOM_OP, tflite_custom_ops, tflite_metadata

#: Names a card may be stored under inside a .tflite (the library's key first).
CARD_METADATA_NAMES = (METADATA_KEY, "caltech_edge_card")
EDGETPU_LIBRARY = "libedgetpu.so.1"


def interpreter_module() -> Any:
    """``ai_edge_litert.interpreter`` or the older ``tflite_runtime.interpreter``."""
    import importlib

    for name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise MissingDependencyError(
        "ai_edge_litert", "litert", "the litert backend (or pip install tflite-runtime)"
    )


def tflite_card(path: Union[str, Path]) -> ModelCard:
    """The card embedded as TFLite metadata, else the sidecar ``<stem>.card.json``."""
    path = Path(path)
    meta = tflite_metadata(path)
    for name in CARD_METADATA_NAMES:
        if meta.get(name):
            text = meta[name].decode("utf-8")
            return ModelCard.from_json(text, "{} [metadata {}]".format(path, name))
    return _fallback(path, "TFLite metadata")


def edgetpu_delegates(module: Any, path: Path) -> List[Any]:
    """``[Edge TPU delegate]`` when libedgetpu loads (``CALTECH_EDGE_EDGETPU=0`` turns it off)."""
    compiled = EDGETPU_CUSTOM_OP in tflite_custom_ops(path)
    wanted = os.environ.get("CALTECH_EDGE_EDGETPU", "auto").lower() not in ("0", "off", "no")
    present = compiled or ctypes.util.find_library("edgetpu")
    if wanted and present and _loads(EDGETPU_LIBRARY):
        try:
            return [module.load_delegate(EDGETPU_LIBRARY)]
        except (ValueError, OSError, AttributeError):
            pass
    if compiled:
        raise BackendError(
            "{}: this model was compiled for the Edge TPU but {} cannot be loaded; install "
            "libedgetpu1-std (https://coral.ai/software/) or run the uncompiled "
            "model.tflite".format(path, EDGETPU_LIBRARY)
        )
    return []


def _loads(library: str) -> bool:
    """Can the dynamic loader open ``library``? Asked before ``load_delegate``, whose
    ``Delegate`` left half-built by a missing library prints an unraisable AttributeError
    from its ``__del__`` under our own one-line error."""
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def default_threads() -> int:
    """Every core this process may use: the interpreter's own default is one thread.

    ONNX Runtime, OpenVINO and ExecuTorch use all cores unless told otherwise; LiteRT's
    ``num_threads=None`` ran the real SqueezeNet INT8 at 2.0 ms here against 1.13 ms on
    both cores, so a Pi 5 would have used a quarter of its CPU. The affinity mask, not
    ``os.cpu_count()``, so a container or ``taskset`` limit is respected.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _quant(detail: Dict[str, Any]) -> Tuple[float, int]:
    scale, zero = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero)


class LiteRtRuntime:
    """A ``.tflite`` in a LiteRT ``Interpreter`` (XNNPACK on the CPU, Edge TPU if present)."""

    name = "litert"

    def __init__(
        self,
        path: Union[str, Path],
        *,
        card: Optional[ModelCard] = None,
        precision_hint: Optional[str] = None,
        threads: Optional[int] = None,
    ) -> None:
        self.path = Path(path)
        own_precision_only(
            self.path,
            precision_hint,
            "LiteRT runs the file's own precision; export tflite-fp16 or tflite-int8 instead",
        )
        module = interpreter_module()
        self.card = card if card is not None else tflite_card(self.path)
        self.delegates = edgetpu_delegates(module, self.path)
        self.threads = int(threads) if threads else default_threads()
        try:
            self.interpreter = module.Interpreter(
                model_path=str(self.path),
                num_threads=self.threads,
                experimental_delegates=self.delegates or None,
            )
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BackendError(
                "{}: LiteRT cannot load this model ({})".format(self.path, exc)
            ) from exc
        self._setup_io()

    def _setup_io(self) -> None:
        inp = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        self.input_name = str(inp["name"])
        self._in_index, self._out_index = inp["index"], out["index"]
        self._in_dtype = np.dtype(inp["dtype"])
        self._in_scale, self._in_zero = _quant(inp)
        self._out_scale, self._out_zero = _quant(out)
        self._out_quantized = np.dtype(out["dtype"]).kind in "iu" and self._out_scale > 0
        shape = tuple(int(s) for s in inp["shape"])
        size = self.card.preprocess.image_size
        if shape[1:] == (size, size, 3):
            self.layout = "NHWC"
        elif shape[1:] == (3, size, size):
            self.layout = "NCHW"
        else:
            raise BackendError(
                "{}: input shape {} fits neither NHWC nor NCHW for the card's {} px "
                "input; the card does not belong to this model".format(self.path, shape, size)
            )
        self._info = np.iinfo(self._in_dtype) if self._in_dtype.kind in "iu" else None
        if self._info is not None and self._in_scale <= 0:
            raise BackendError("{}: integer input without a scale".format(self.path))
        self._shape = shape[1:]
        # int8/uint8 CHW planes: quantized first, then interleaved (no temporaries per frame)
        self._planes = np.empty((3, size * size), self._in_dtype)
        self._cv_dtype = cv2.CV_8S if self._in_dtype == np.int8 else cv2.CV_8U
        if self._info is not None and self._in_dtype.itemsize != 1:
            raise BackendError(
                "{}: {} input is not supported (int8/uint8/float only)".format(
                    self.path, self._in_dtype
                )
            )
        self._codes = self._pixel_codes()
        #: True when :meth:`infer_pixels` takes uint8 RGB crops (integer NHWC input)
        self.takes_pixels = self._codes is not None

    def _pixel_codes(self) -> Optional[PixelCodes]:
        """uint8 crop -> input codes in one pass, for integer NHWC files in RGB order (what
        the LiteRT export writes); None otherwise. Built from :meth:`_quantize`, the float
        path's own step, so both paths give the same codes."""
        if self._info is None or self.layout != "NHWC":
            return None
        if self.card.preprocess.channel_order != "RGB":
            return None
        return PixelCodes(self.card.preprocess, self._quantize, self._in_dtype,
                          self._in_scale, self._in_zero)  # fmt: skip

    @property
    def input_dtype(self) -> str:
        """``float32``, ``int8`` or ``uint8``: what the file's input tensor takes."""
        return self._in_dtype.name

    def to_input(self, chw_batch: np.ndarray) -> np.ndarray:
        """NCHW float32 -> the tensor the file takes (layout, then int8/uint8 quantization)."""
        out = np.empty((len(chw_batch), *self._shape), self._in_dtype)
        for i, chw in enumerate(chw_batch):
            self._convert(chw, out[i])
        return out

    def _convert(self, chw: np.ndarray, dst: np.ndarray) -> None:
        """One CHW image into ``dst`` (the interpreter's own input buffer in :meth:`infer`).

        OpenCV does both steps: ``cv2.addWeighted`` computes ``saturate(round(x / scale +
        zero))`` in one pass (round half to even, like ``np.rint``) and ``cv2.merge``
        interleaves the planes to NHWC (~3x faster than numpy's strided transpose copy).
        Quantizing the planes *before* interleaving moves a quarter of the bytes through
        the merge: 50 us instead of 95 us per 224 px image here, where numpy took 200-300 us
        (10-20% of a 1.3-3 ms INT8 call).
        """
        chw = np.ascontiguousarray(chw)
        if self._info is None:
            if self.layout == "NCHW":
                np.copyto(dst, chw, casting="same_kind")
            else:
                cv2.merge(list(chw), dst=dst)
            return
        flat = chw.reshape(chw.shape[0], -1)
        planes = dst.reshape(flat.shape) if self.layout == "NCHW" else self._planes
        self._quantize(flat, planes)
        if self.layout == "NHWC":
            cv2.merge([p.reshape(dst.shape[:2]) for p in planes], dst=dst)

    def _quantize(self, flat: np.ndarray, dst: np.ndarray) -> None:
        """float32 planes -> ``saturate(round(x / scale + zero))`` in the input's int type."""
        cv2.addWeighted(flat, 1.0 / self._in_scale, flat, 0.0, float(self._in_zero),
                        dst=dst, dtype=self._cv_dtype)  # fmt: skip

    def from_output(self, raw: np.ndarray) -> np.ndarray:
        """Output codes -> float32 logits (``(q - zero) * scale``; float copied as is)."""
        if self._out_quantized:
            return (raw.astype(np.float32) - self._out_zero) * self._out_scale
        return raw.astype(np.float32, copy=True)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self._invoke_each(check_batch(batch, self.card, str(self.path)), self._convert)

    def infer_pixels(self, batch: np.ndarray) -> np.ndarray:
        """NHWC uint8 RGB crops (:func:`~caltech_edge.data.transforms.crop_rgb`) -> logits.

        Each crop's codes are written straight into the interpreter's input buffer; no
        float tensor is made. Only when :attr:`takes_pixels` is true.
        """
        arr = np.asarray(batch)
        size = self.card.preprocess.image_size
        if self._codes is None or arr.dtype != np.uint8 or arr.shape[1:] != (size, size, 3):
            raise BackendError(
                "{}: infer_pixels takes (N, {}, {}, 3) uint8 RGB crops of an integer-input "
                "model, got {} {}; use infer() with a float tensor".format(
                    self.path, size, size, arr.dtype, arr.shape
                )
            )
        return self._invoke_each(arr, self._codes.write)

    def _invoke_each(self, batch: np.ndarray, write: Any) -> np.ndarray:
        """Run ``batch`` one item at a time (TFLite graphs are exported with a static batch
        of 1); ``write(item, dst)`` fills the interpreter's own input buffer (no set_tensor
        copy). The view must be gone before invoke(), which refuses while one is held."""
        it = self.interpreter
        outs = []
        for item in batch:
            view = it.tensor(self._in_index)()
            write(item, view[0])
            del view
            it.invoke()
            outs.append(it.get_tensor(self._out_index))  # a copy: safe past the next invoke
        # one dequantization for the batch; a frame (batch of 1) skips the concatenate
        raw = outs[0] if len(outs) == 1 else np.concatenate(outs)
        return self.from_output(raw).reshape(len(batch), -1)

    def __repr__(self) -> str:
        return "LiteRtRuntime({!r}, layout={})".format(str(self.path), self.layout)


def raw_call(
    path: Union[str, Path], probe: np.ndarray, threads: Optional[int] = None, loaded: Any = None
) -> Any:
    """The bare interpreter call on ``probe`` (benchmarks' reference: no library code).

    The input is converted to the file's layout and dtype once, outside the timed call, so
    the callable is exactly ``set_tensor`` + ``invoke`` + ``get_tensor``.

    ``loaded`` (our runtime for the same file) makes it the bare call on *that* interpreter,
    so a ratio compares only the code around the call. Two interpreters of one file do not
    run at one speed here: XNNPACK instances of the real SqueezeNet INT8 settled at ~1.0 or
    ~1.25 ms, the Caltech-101 Lite0 INT8 at 2.8 or 4.9 ms, per instance, which swamped the
    few percent a ratio is meant to show.
    """
    if loaded is not None:
        it = loaded.interpreter
    else:
        module = interpreter_module()
        it = module.Interpreter(
            model_path=str(path), num_threads=int(threads) if threads else default_threads()
        )
        it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    x = probe.transpose(0, 2, 3, 1) if int(inp["shape"][-1]) == 3 else probe
    scale, zero = _quant(inp)
    dtype = np.dtype(inp["dtype"])
    if dtype.kind in "iu":
        x = np.clip(np.rint(x / scale) + zero, np.iinfo(dtype).min, np.iinfo(dtype).max)
    x = np.ascontiguousarray(x, dtype=dtype)
    in_index, out_index = inp["index"], out["index"]

    def call() -> np.ndarray:
        it.set_tensor(in_index, x)
        it.invoke()
        return it.get_tensor(out_index)

    return call
