"""``load_model(path).predict(frame_bgr)``: one camera frame in, one JSON-ready dict out.

Labels and preprocessing come from the artifact's model card; the frame is converted with
the library's single :func:`~caltech_edge.data.transforms.preprocess` (``input_order="BGR"``:
the one BGR->RGB place), so the device computes exactly what training and export
verification computed. A runtime with ``takes_pixels`` (a full-integer LiteRT file) gets the
same uint8 crop before normalization and maps it to its integer codes itself, the codes the
float path would give. Python 3.8-compatible; imports no torch or mxnet.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..card import ModelCard
from ..data.transforms import as_rgb, crop_rgb, normalize
from ..errors import ModelCardError
from .backends import open_runtime
from .base import Runtime
from .frames import check_frame, crop_resize, crop_roi
from .payload import now_iso


def _best(z: np.ndarray, k: int) -> List[int]:
    """Indices of the ``k`` largest values, best first, equal values by lower index (the
    order of a stable ``argsort(-z)``). For the usual k <= 8, repeated argmax on a copy:
    2.4 us for 5 of 257 classes here, against 4.2 us for argpartition alone."""
    if k > 8:
        return np.argsort(-z, kind="stable")[:k].tolist()
    w = z.copy()
    best = []
    for _ in range(k):
        i = int(w.argmax())
        best.append(i)
        w[i] = -np.inf
    return best


def top_k_softmax(logits: np.ndarray, labels: Sequence[str], k: int) -> List[Dict[str, Any]]:
    """Best-first ``[{label, index, probability}]`` (softmax) of one logit vector.

    Why so lean: this runs once per frame between two inference calls, where Python work
    costs two to four times its tight-loop time (caches and branch predictors are cold
    after the inference; the same with one thread and after 5 ms of plain Python),
    and on a ~1 ms INT8 model every microsecond shows in the frame rate. Softmax is
    monotonic, so the classes are chosen on the logits and only those ``k`` are normalized:
    the values a full float64 softmax with the maximum subtracted gives, as float32.
    """
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    k = max(1, min(int(k), z.shape[0]))
    best = _best(z, k)
    e = np.exp(z - z[best[0]])
    probs = (e[best] / e.sum()).astype(np.float32).tolist()
    return [
        {"label": labels[i] if i < len(labels) else str(i), "index": i, "probability": p}
        for i, p in zip(best, probs)
    ]


def artifact_hash(path: Union[str, Path]) -> str:
    """SHA-256 of the weights file (``.bin`` for IR, ``.params`` for MXNet, else the file)."""
    path = Path(path)
    candidates = [path]
    if path.is_dir():
        candidates = sorted(path.glob("*.params"))
    elif path.suffix == ".xml":
        candidates = [path.with_suffix(".bin"), path]
    elif path.name.endswith("-symbol.json"):
        candidates = sorted(path.parent.glob(path.name[: -len("-symbol.json")] + "-*.params"))
    for candidate in [*candidates, path]:
        if candidate.is_file():
            digest = hashlib.sha256()
            with open(str(candidate), "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            return digest.hexdigest()
    return ""


class EdgeModel:
    """A runtime plus its card: ``predict(frame_bgr)`` and ``predict_batch(frames)``."""

    supports_prefetch = True  # predict_tensor() accepts a tensor preprocessed elsewhere

    def __init__(
        self,
        runtime: Runtime,
        *,
        path: Union[str, Path] = "",
        card: Optional[ModelCard] = None,
        fast_preprocess: Optional[str] = None,
    ) -> None:
        self.runtime = runtime
        self.card = card if card is not None else runtime.card
        self.spec = self.card.preprocess
        self.labels = tuple(self.card.class_names)
        self.path = Path(path) if path else None
        # None: the reference preprocess(); "linear"/"area": crop first (frames.crop_resize)
        self.fast_preprocess = fast_preprocess
        # integer-input runtimes take the uint8 crop and skip the float tensor (see logits())
        self.takes_pixels = bool(getattr(runtime, "takes_pixels", False))
        self.info = {
            "name": self.card.name,
            "version": str(self.card.version),
            "hash": artifact_hash(path) if path else self.card.source_sha256,
            "format": self.card.format,
            "precision": self.card.precision,
            "backend": runtime.name,
        }
        self.check_outputs()

    def _infer_blank(self) -> np.ndarray:
        """Logits for one blank input: the probe of :meth:`check_outputs` (and a warm-up)."""
        return self.runtime.infer(np.zeros(tuple(self.card.input_shape), np.float32))

    def check_outputs(self) -> None:
        """Compare the model's output width with the card's class list, at load.

        Every way of opening a model (``load_model``, ``load_fused``, the DeepLens
        ``awscam`` runtime) builds an :class:`EdgeModel`, so the check lives here once. A
        card from another model would otherwise label results by index ("87") or, worse,
        with the wrong names. Subclasses whose runtime takes other inputs override
        :meth:`_infer_blank`, not this.
        """
        logits = np.asarray(self._infer_blank())
        width = int(logits.reshape(logits.shape[0], -1).shape[1]) if logits.ndim else 0
        if width != len(self.labels):
            raise ModelCardError(
                "{}: the model outputs {} classes but its card lists {}; the card belongs to "
                "another model: re-export, or fix class_names in its card".format(
                    self.path or self.runtime.name, width, len(self.labels)
                )
            )

    @property
    def backend(self) -> str:
        return self.runtime.name

    def preprocess(
        self, frame_bgr: np.ndarray, roi: Optional[Sequence[float]] = None
    ) -> np.ndarray:
        """BGR frame (optionally its ROI) -> the model's input for :meth:`logits`.

        CHW float32, or for a runtime that ``takes_pixels`` the HxWx3 uint8 RGB crop, made
        contiguous. It never shares the frame's memory (as_rgb of a BGR frame is a new
        array), so a camera reusing its buffer cannot change a prefetched input.
        """
        frame = crop_roi(check_frame(frame_bgr), roi)
        if self.fast_preprocess is None:
            crop = crop_rgb(frame, self.spec, input_order="BGR")
        else:
            crop = as_rgb(crop_resize(frame, self.spec, self.fast_preprocess), "BGR")
        return np.ascontiguousarray(crop) if self.takes_pixels else normalize(crop, self.spec)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a batch of :meth:`preprocess` outputs: float NCHW or uint8 NHWC crops.

        Either form works with any runtime: a hot-swapped model may get an input its
        predecessor prepared, so uint8 crops are normalized here for a float runtime.
        """
        batch = np.asarray(batch)
        if batch.dtype != np.uint8:
            return self.runtime.infer(batch)
        if self.takes_pixels:
            return self.runtime.infer_pixels(batch)  # type: ignore[attr-defined]
        return self.runtime.infer(np.stack([normalize(c, self.spec) for c in batch]))

    def postprocess(self, logits: np.ndarray, top_k_: int) -> List[List[Dict[str, Any]]]:
        rows = np.asarray(logits).reshape(len(logits), -1)
        return [top_k_softmax(row, self.labels, top_k_) for row in rows]

    def _result(self, preds: List[Dict[str, Any]], t: Sequence[float], n: int) -> Dict[str, Any]:
        pre, inf, post = (t[1] - t[0]) * 1e3, (t[2] - t[1]) * 1e3, (t[3] - t[2]) * 1e3
        return {
            "predictions": preds,
            "latency_ms": {
                "total": round((pre + inf + post) / n, 3),
                "preprocess": round(pre / n, 3),
                "inference": round(inf / n, 3),
                "postprocess": round(post / n, 3),
            },
            "model": dict(self.info),
            "timestamp": now_iso(),
        }

    def predict(
        self, frame_bgr: np.ndarray, top_k: int = 5, roi: Optional[Sequence[float]] = None
    ) -> Dict[str, Any]:
        """Classify one BGR frame; JSON-serializable dict (predictions best first, softmax)."""
        t0 = time.perf_counter()
        x = self.preprocess(frame_bgr, roi)
        t1 = time.perf_counter()
        logits = self.logits(x[None])
        t2 = time.perf_counter()
        preds = self.postprocess(logits, top_k)[0]
        t3 = time.perf_counter()
        return self._result(preds, (t0, t1, t2, t3), 1)

    def predict_tensor(
        self, chw: np.ndarray, top_k: int = 5, preprocess_ms: float = 0.0
    ) -> Dict[str, Any]:
        """Classify a :meth:`preprocess` output made elsewhere (pipelined loops pass its cost)."""
        t1 = time.perf_counter()
        logits = self.logits(np.asarray(chw)[None])
        t2 = time.perf_counter()
        preds = self.postprocess(logits, top_k)[0]
        t3 = time.perf_counter()
        return self._result(preds, (t1 - preprocess_ms / 1e3, t1, t2, t3), 1)

    def predict_batch(
        self, frames: Sequence[np.ndarray], top_k: int = 5, roi: Optional[Sequence[float]] = None
    ) -> List[Dict[str, Any]]:
        """Classify several BGR frames in one backend call; one dict per frame, same order."""
        if len(frames) == 0:
            return []
        t0 = time.perf_counter()
        batch = np.stack([self.preprocess(f, roi) for f in frames])
        t1 = time.perf_counter()
        logits = self.logits(batch)
        t2 = time.perf_counter()
        all_preds = self.postprocess(logits, top_k)
        t3 = time.perf_counter()
        return [self._result(p, (t0, t1, t2, t3), len(frames)) for p in all_preds]

    def __repr__(self) -> str:
        return "EdgeModel({!r}, backend={!r}, classes={})".format(
            str(self.path), self.backend, len(self.labels)
        )


def load_model(
    path: Union[str, Path],
    *,
    backend: Optional[str] = None,
    card: Optional[ModelCard] = None,
    precision_hint: Optional[str] = None,
    threads: Optional[int] = None,
    fast_preprocess: Optional[str] = None,
) -> EdgeModel:
    """Open an exported artifact (.onnx, .xml, MXNet symbol/params) for frame prediction.

    ``fast_preprocess="linear"`` crops the kept square before resizing (see
    :func:`~caltech_edge.runtime.frames.crop_resize`): ~4x cheaper on camera frames, pixels
    close to but not identical with the reference preprocessing used for parity checks.
    """
    runtime = open_runtime(
        path, backend=backend, card=card, precision_hint=precision_hint, threads=threads
    )
    return EdgeModel(runtime, path=path, fast_preprocess=fast_preprocess)
