"""Every artifact checks itself: same real images through source and artifact, compared.

The source is the training model (torch run -> ``nn.Module``; gluon run -> its own
symbol/params through the MXNet backend), another artifact, or any object with
``infer``. Both run on one batch of images preprocessed by the shared
:func:`caltech_edge.data.transforms.preprocess`, taken round-robin over the classes of
the dataset the model is exported for. Tolerances by precision (see :data:`TOLERANCES`):

* fp32: max |logit diff| <= ``rtol`` x max(1, max |source logit|) and cosine >= 0.99999
  -- tight enough that OpenVINO's bf16 default mode fails it, so FP32 IR is compiled
  with the ``f32`` inference precision hint here (the default mode is reported aside);
* fp16: top-1 agreement >= 0.97 and a cosine floor;
* int8: top-1 agreement >= 0.90 only. The lowest per-image cosine is reported, not judged:
  on a model with small, nearly equal logits (early in training, few classes) INT8 noise
  alone drives it near 0 while every prediction still agrees, and agreement is what a
  device's output depends on.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..card import ModelCard
from ..errors import DatasetError, VerificationError
from ..rundir import RunDir

log = logging.getLogger(__name__)

Predict = Callable[[np.ndarray], np.ndarray]

TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"rtol": 2e-4, "min_cosine": 0.99999, "min_top1_agreement": 0.0},
    "fp16": {"rtol": float("inf"), "min_cosine": 0.999, "min_top1_agreement": 0.97},
    "int8": {"rtol": float("inf"), "min_cosine": -1.0, "min_top1_agreement": 0.90},
}
DEFAULT_IMAGES = 48


@dataclass(frozen=True)
class VerifyImages:
    """A preprocessed batch, with labels in the card's class-index space (-1 = unknown)."""

    batch: np.ndarray
    labels: np.ndarray
    source: str  # where the images came from (a dataset root, "given", "synthetic ...")


@dataclass(frozen=True)
class VerifyReport:
    artifact: str
    against: str
    backend: str
    precision: str
    images: int
    data: str
    max_abs_diff: float
    mean_abs_diff: float
    cosine: float  # the lowest per-image cosine similarity of the logit vectors
    top1_agreement: float
    tolerance: dict[str, float]
    passed: bool
    source_accuracy: float | None = None  # top-1 vs labels, when labels map to the card
    artifact_accuracy: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # "numeric" (run on the images), "structural" (inspected, not run: Core ML off macOS)
    # or "not-run" (nothing to run here, e.g. no edgetpu_compiler); see verify_devices.
    kind: str = "numeric"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tolerance"] = {
            k: (None if v == float("inf") else v) for k, v in self.tolerance.items()
        }
        for key in ("max_abs_diff", "mean_abs_diff", "cosine", "top1_agreement"):
            if out[key] != out[key]:  # NaN: nothing was compared (strict JSON has no NaN)
                out[key] = None
        return out

    def summary(self) -> str:
        if self.kind != "numeric":
            return (
                f"{'PASS' if self.passed else 'FAIL'} {self.artifact} [{self.backend}, "
                f"{self.precision}] {self.kind.upper()}: {self.extra.get('note', '')}"
            )
        acc = (
            f", accuracy {self.artifact_accuracy:.3f} (source {self.source_accuracy:.3f})"
            if self.artifact_accuracy is not None and self.source_accuracy is not None
            else ""
        )
        return (
            f"{'PASS' if self.passed else 'FAIL'} {self.artifact} [{self.backend}, "
            f"{self.precision}] vs {self.against}: max|diff| {self.max_abs_diff:.3g}, "
            f"cosine {self.cosine:.6f}, top-1 agreement {self.top1_agreement:.3f} over "
            f"{self.images} images{acc}"
        )


# -- images -----------------------------------------------------------------------------
_PREFIX = re.compile(r"^\d+\.")


def label_map(dataset_classes: Sequence[str], card: ModelCard) -> np.ndarray:
    """Dataset label -> card index, by exact name or by name without the ``NNN.`` prefix."""
    exact = {name: i for i, name in enumerate(card.class_names)}
    bare = {_PREFIX.sub("", name): i for i, name in enumerate(card.class_names)}
    return np.asarray(
        [exact.get(c, bare.get(_PREFIX.sub("", c), -1)) for c in dataset_classes], dtype=np.int64
    )


def load_images(
    card: ModelCard, *, data: str | Path | None = None, limit: int | None = DEFAULT_IMAGES
) -> VerifyImages:
    """Preprocess up to ``limit`` images of ``data`` (round-robin over classes; None = all).

    Without ``data`` the card's dataset folder is used when it exists; failing that, a
    small generated dataset (logged: real images give a far more meaningful check).
    """
    from ..data.datasets import open_dataset
    from ..data.transforms import preprocess

    root = Path(data) if data is not None else None
    if root is None and card.dataset and Path(card.dataset).is_dir():
        root = Path(card.dataset)
    tmp = None
    if root is None:
        from ..data.synth import synthesize

        log.warning(
            "no --data given for verification: using generated images; pass the dataset "
            "the model is exported for to verify on real images"
        )
        tmp = tempfile.TemporaryDirectory(prefix="caltech-edge-verify-")
        size = max(64, card.preprocess.resize_size)
        root = synthesize(tmp.name, classes=4, per_class=6, size=size, seed=0)
    try:
        ds = open_dataset(root)
        if len(ds) == 0:
            raise DatasetError(f"{root}: no readable images to verify with")
        per_class = [list(ix) for ix in ds.indices_by_class()]
        order: list[int] = []
        while any(per_class) and (not limit or len(order) < limit):
            for ix in per_class:
                if ix and (not limit or len(order) < limit):
                    order.append(ix.pop(0))
        mapping = label_map(ds.classes, card)
        batch, labels = [], []
        for i in order:
            rgb, label = ds[i]
            batch.append(preprocess(rgb, card.preprocess))
            labels.append(mapping[label])
        source = "synthetic (no data given)" if tmp is not None else str(root)
        return VerifyImages(np.stack(batch), np.asarray(labels, dtype=np.int64), source)
    finally:
        if tmp is not None:
            tmp.cleanup()


# -- predictors -------------------------------------------------------------------------
def torch_predictor(model: Any, *, chunk: int = 32) -> Predict:
    import torch

    model.eval()

    def predict(batch: np.ndarray) -> np.ndarray:
        outs = []
        with torch.no_grad():
            for i in range(0, len(batch), chunk):
                outs.append(model(torch.from_numpy(batch[i : i + chunk])).float().numpy())
        return np.concatenate(outs)

    return predict


def resolve_source(
    against: Any, *, card: ModelCard | None = None
) -> tuple[Predict, ModelCard, str]:
    """``against`` -> (predict, card, description). See the module docstring for kinds.

    ``card`` describes a bare torch module (the artifact's card, by default); runs and
    artifacts bring their own.
    """
    from ..runtime.backends import open_runtime

    if hasattr(against, "infer"):  # a Runtime
        return against.infer, card or against.card, getattr(against, "name", "runtime")
    if hasattr(against, "parameters") and callable(against):  # a torch module
        if card is None:
            raise VerificationError("verifying against a torch model needs its card=")
        return torch_predictor(against), card, f"torch {card.arch}"
    path = Path(against)
    run = RunDir(path)
    if path.is_dir() and run.is_run():
        from ..frameworks.base import get_framework

        return get_framework(run.load_card().framework).predictor(run)
    if not path.exists():
        raise VerificationError(f"{path}: the verification source does not exist")
    rt = open_runtime(path, precision_hint="f32")
    return rt.infer, rt.card, f"{rt.name} {path}"


# -- comparison -------------------------------------------------------------------------
def compare(reference: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """Max/mean |diff|, lowest per-image cosine, top-1 agreement and the reference scale."""
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    out = np.asarray(output, dtype=np.float64).reshape(len(output), -1)
    if ref.shape != out.shape:
        raise VerificationError(f"output shape {out.shape} differs from the source's {ref.shape}")
    diff = np.abs(ref - out)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cos = np.where(norms > 0, (ref * out).sum(axis=1) / np.maximum(norms, 1e-30), 1.0)
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "cosine": float(cos.min()),
        "top1_agreement": float((ref.argmax(1) == out.argmax(1)).mean()),
        "scale": float(max(1.0, np.abs(ref).max())),
    }


def judge(metrics: dict[str, float], tolerance: dict[str, float]) -> list[str]:
    """The violated limits, in words (empty = passed)."""
    problems = []
    limit = tolerance["rtol"] * metrics["scale"]
    if metrics["max_abs_diff"] > limit:
        problems.append(f"max|diff| {metrics['max_abs_diff']:.3g} > {limit:.3g}")
    if metrics["cosine"] < tolerance["min_cosine"]:
        problems.append(f"cosine {metrics['cosine']:.6f} < {tolerance['min_cosine']}")
    if metrics["top1_agreement"] < tolerance["min_top1_agreement"]:
        problems.append(
            f"top-1 agreement {metrics['top1_agreement']:.3f} < {tolerance['min_top1_agreement']}"
        )
    return problems


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float | None:
    known = labels >= 0
    if not known.any():
        return None
    return float((logits[known].argmax(1) == labels[known]).mean())


def _check_same_model(artifact: Path, card: ModelCard, source_card: ModelCard) -> None:
    """Refuse a source with other classes or input shape: comparing logits of two different
    models would report a meaningless mismatch instead of the real mistake."""
    if tuple(source_card.class_names) != tuple(card.class_names):
        raise VerificationError(
            f"{artifact}: its classes ({card.num_classes}) differ from the source's "
            f"({source_card.num_classes}); verify against the model it was exported from"
        )
    if source_card.input_shape != card.input_shape:
        raise VerificationError(
            f"{artifact}: its input shape {card.input_shape} differs from the source's "
            f"{source_card.input_shape}; verify against the model it was exported from"
        )


def _as_verify_images(
    images: VerifyImages | np.ndarray | None,
    card: ModelCard,
    *,
    data: str | Path | None,
    limit: int | None,
) -> VerifyImages:
    """``images`` as :class:`VerifyImages`: loaded from ``data`` when None, a bare batch
    wrapped with unknown labels (-1), so accuracy is left out rather than made up."""
    if images is None:
        return load_images(card, data=data, limit=limit)
    if not isinstance(images, VerifyImages):
        batch = np.asarray(images, dtype=np.float32)
        return VerifyImages(batch, np.full(len(batch), -1, dtype=np.int64), "given")
    return images


def _reference_logits(
    predict: Predict, batch: np.ndarray, reference: np.ndarray | None
) -> np.ndarray:
    """The source's logits on ``batch``: ``reference`` when given (one source pass shared by
    every artifact of an export), checked to cover the batch; else computed now."""
    if reference is None:
        return predict(batch)
    if len(reference) != len(batch):
        raise VerificationError(
            f"reference logits cover {len(reference)} images, the batch has {len(batch)}"
        )
    return reference


def _device_default_mode(
    artifact: Path, card: ModelCard | None, reference: np.ndarray, batch: np.ndarray
) -> dict[str, float]:
    """OpenVINO's fast default mode (bf16 on AMX CPUs), compared but not judged: the f32
    hint is what passes or fails, this shows what a device would get without it."""
    from ..runtime.backends import open_runtime

    fast = open_runtime(artifact, backend="openvino", card=card).infer(batch)
    m = compare(reference, fast)
    return {k: m[k] for k in ("max_abs_diff", "cosine", "top1_agreement")}


def verify_artifact(
    artifact: str | Path,
    *,
    against: Any,
    data: str | Path | None = None,
    images: VerifyImages | np.ndarray | None = None,
    card: ModelCard | None = None,
    limit: int | None = DEFAULT_IMAGES,
    tolerance: dict[str, float] | None = None,
    backend: str | None = None,
    reference: np.ndarray | None = None,
    check: bool = True,
) -> VerifyReport:
    """Run ``artifact`` and ``against`` on the same images and compare their logits.

    ``images``: a prepared :class:`VerifyImages` (or an NCHW batch) reused across
    artifacts; else ``limit`` images of ``data`` are preprocessed. ``tolerance`` overrides
    the per-precision limits. ``reference``: the source's logits on ``images`` when
    already computed (one torch pass shared by every artifact of an export). With ``check`` a failure raises :class:`VerificationError`
    naming the artifact and the numbers; the report is returned either way otherwise.
    """
    from ..runtime.backends import open_runtime

    artifact = Path(artifact)
    rt = open_runtime(artifact, backend=backend, card=card, precision_hint="f32")
    predict, source_card, source_name = resolve_source(against, card=rt.card)
    _check_same_model(artifact, rt.card, source_card)
    images = _as_verify_images(images, rt.card, data=data, limit=limit)
    reference = _reference_logits(predict, images.batch, reference)
    output = rt.infer(images.batch)
    precision = rt.card.precision if rt.card.precision in TOLERANCES else "fp32"
    limits = dict(TOLERANCES[precision], **(tolerance or {}))
    metrics = compare(reference, output)
    problems = judge(metrics, limits)
    extra: dict[str, Any] = {"scale": metrics["scale"]}
    if rt.name == "openvino":  # the fast default mode (bf16 on AMX CPUs), reported aside
        extra["device_default_mode"] = _device_default_mode(artifact, card, reference, images.batch)
    report = VerifyReport(
        artifact=str(artifact),
        against=source_name,
        backend=rt.name,
        precision=precision,
        images=len(images.batch),
        data=images.source,
        max_abs_diff=metrics["max_abs_diff"],
        mean_abs_diff=metrics["mean_abs_diff"],
        cosine=metrics["cosine"],
        top1_agreement=metrics["top1_agreement"],
        tolerance=limits,
        passed=not problems,
        source_accuracy=_accuracy(reference, images.labels),
        artifact_accuracy=_accuracy(output, images.labels),
        extra=extra,
    )
    log.info("%s", report.summary())
    if check and problems:
        raise VerificationError(
            f"{artifact}: {rt.name} ({precision}) does not match {source_name} on "
            f"{report.images} images from {images.source}: {'; '.join(problems)}"
        )
    return report
