"""Accuracy-aware INT8 without labels: try a quantizer's recipes until one agrees with FP32.

Why: the same calibration rarely suits every network. The real SqueezeNet lost 1.7 points
with ONNX Runtime's default recipe while another recipe of the *same* back end keeps it
within a point. Users without labels cannot measure accuracy, but they can always measure
how often the INT8 model picks the same top-1 class as its FP32 source on images it was
not calibrated on. That agreement is what this module optimises.

How a quantizer plugs in (ONNX Runtime, OpenVINO/NNCF here; LiteRT, ExecuTorch and
TensorRT-style QDQ ONNX follow the same shape):

1. Write the producer as ``quantize(src, dst, *, calibration, card=None, **recipe_options)
   -> Path``. ``calibration`` is a :class:`~caltech_edge.data.calibration.CalibrationReader`
   (ONNX Runtime ``CalibrationDataReader`` shape, iterable for NNCF / PT2E loops); it
   writes the artifact at ``dst`` (plus any companion files next to it, e.g. ``.bin``
   and the ``<stem>.card.json`` sidecar) and returns the main file's path.
2. Declare the recipes, best first::

       RECIPES = (
           Recipe("minmax", {"method": "minmax"}),
           Recipe("keep-classifier-float", {"method": "minmax", "exclude_classifier": True}),
       )

   Order matters: the search keeps the *first* recipe that reaches the target, so put
   the fastest-running model first and the float-fallback recipes last.
3. Bundle them: ``SPEC = QuantizerSpec("litert", quantize, RECIPES, restamp=...)``.
   ``infer`` (default: :func:`runtime_infer`, any file ``open_runtime`` can load) turns
   an artifact path into ``predict(NCHW float32) -> logits``; give your own when the
   runtime registry cannot load the format yet. ``restamp(path, card)`` rewrites the
   card embedded in the artifact after the search (default: the sidecar only).
4. Call :func:`search_recipes` (or register ``spec=`` in
   :data:`caltech_edge.compress.quantize.QUANTIZERS`, which does it for you).

The search holds out every k-th calibration image (``holdout``, default a third),
calibrates on the rest, measures top-1 agreement on the held-out images (when no recipe
reaches the target, :func:`best_trial` treats agreements within one standard error as
tied and keeps the logits closest to FP32; when one does, :func:`settle` still prefers an
earlier recipe with closer logits whose agreement the held-out images cannot tell from
it), and writes the
chosen recipe and its agreement into the card (``extra["quantization"]["recipe"]``,
``["agreement"]``, ``["recipes_tried"]``) and into :class:`SearchResult`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..card import ModelCard, sidecar_path
from ..errors import ConfigError, ExportError
from .trials import Trial, agreement, best_trial, kept_reason, logit_error, settle

__all__ = [
    "DEFAULT_TARGET",
    "QuantizationWarning",
    "QuantizerSpec",
    "Recipe",
    "SearchResult",
    "Trial",
    "agreement",
    "best_trial",
    "logit_error",
    "runtime_infer",
    "search_recipes",
    "settle",
    "sidecar_restamp",
    "split_holdout",
]

log = logging.getLogger(__name__)

DEFAULT_TARGET = 0.99
DEFAULT_HOLDOUT = 1.0 / 3.0
MIN_HOLDOUT = 8

Predict = Callable[[np.ndarray], np.ndarray]


class QuantizationWarning(UserWarning):
    """No recipe reached the agreement target: the best one was kept (numbers in the text)."""


@dataclass(frozen=True)
class Recipe:
    """One way to quantize: a name for reports and the producer's keyword options."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": dict(self.options)}


def runtime_infer(path: Path) -> Predict:
    """``predict`` for any artifact the runtime registry loads (FP32 hint: true parity)."""
    from ..runtime.backends import open_runtime

    runtime = open_runtime(path, precision_hint="f32")

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.concatenate([runtime.infer(batch[i : i + 1]) for i in range(len(batch))])

    return predict


def sidecar_restamp(path: Path, card: ModelCard) -> None:
    """Rewrite only the ``<stem>.card.json`` beside ``path``."""
    card.save(sidecar_path(path))


@dataclass(frozen=True)
class QuantizerSpec:
    """A quantizer as the search sees it: a producer, its ordered recipes, how to run it."""

    name: str
    quantize: Callable[..., Path]
    recipes: tuple[Recipe, ...]
    infer: Callable[[Path], Predict] = runtime_infer
    restamp: Callable[[Path, ModelCard], None] = sidecar_restamp

    def __post_init__(self) -> None:
        if not self.recipes:
            raise ValueError(f"quantizer {self.name!r} declares no recipes")
        names = [r.name for r in self.recipes]
        if len(set(names)) != len(names):
            raise ValueError(f"quantizer {self.name!r} has duplicate recipe names: {names}")

    def recipe(self, name: str) -> Recipe:
        from ..errors import UnknownNameError

        for r in self.recipes:
            if r.name == name:
                return r
        raise UnknownNameError(f"{self.name} recipe", name, [r.name for r in self.recipes])


@dataclass(frozen=True)
class SearchResult:
    """What the search kept and why (also written into the artifact's card)."""

    artifact: Path
    recipe: Recipe
    agreement: float
    target: float
    met: bool
    holdout_images: int
    calibration_images: int
    trials: tuple[Trial, ...]
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": str(self.artifact),
            "recipe": self.recipe.to_dict(),
            "reason": self.reason,
            "agreement": round(self.agreement, 4),
            "target": self.target,
            "met": self.met,
            "holdout_images": self.holdout_images,
            "calibration_images": self.calibration_images,
            "trials": [t.to_dict() for t in self.trials],
        }


def split_holdout(calibration, fraction: float = DEFAULT_HOLDOUT):
    """(calibration reader without the held-out images, held-out NCHW array).

    Every k-th image is held out, so a class-balanced (round-robin) calibration sample
    stays balanced on both sides.
    """
    from ..data.calibration import CalibrationReader

    if not 0.0 < float(fraction) < 1.0:
        raise ConfigError(f"holdout must be a fraction in (0, 1); got {fraction}")
    images = [img for batch in calibration for img in batch]
    step = max(2, round(1.0 / float(fraction)))
    held = [img for i, img in enumerate(images) if i % step == step - 1]
    kept = [img for i, img in enumerate(images) if i % step != step - 1]
    if len(held) < MIN_HOLDOUT or not kept:
        raise ConfigError(
            f"only {len(images)} calibration images: accuracy-aware INT8 holds out one in "
            f"{step} and needs at least {MIN_HOLDOUT} held out; use --calib-size "
            f"{MIN_HOLDOUT * step} or more"
        )
    reader = CalibrationReader.from_arrays(
        [img[None] for img in kept], input_name=calibration.input_name
    )
    reader.classes_seen, reader.classes_total = calibration.classes_seen, calibration.classes_total
    return reader, np.stack(held)


def _companions(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


def _promote(winner: Path, dst: Path) -> Path:
    """Move the winning artifact and its companion files (.bin, sidecar) to ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    for f in _companions(winner.parent):
        os.replace(f, dst.parent / f.name)
    return dst


def _try(spec: QuantizerSpec, recipe: Recipe, src, work: Path, dst_name: str, **kw) -> Path:
    folder = work / recipe.name
    folder.mkdir(parents=True, exist_ok=True)
    kw["calibration"].rewind()
    return Path(spec.quantize(src, folder / dst_name, **kw, **dict(recipe.options)))


def search_recipes(
    spec: QuantizerSpec,
    src: str | Path,
    dst: str | Path,
    *,
    calibration,
    card: ModelCard | None = None,
    target: float = DEFAULT_TARGET,
    holdout: float = DEFAULT_HOLDOUT,
    recipes: Sequence[Recipe] | None = None,
    reference: Predict | None = None,
) -> SearchResult:
    """Quantize ``src`` with ``spec``'s recipes in order until one reaches ``target``; keep
    it, or an earlier one with closer logits that the held-out images cannot tell from it.

    ``reference``: FP32 ``predict`` (default: ``spec.infer(src)``; pass a torch predictor
    when ``src`` is not a file the runtime loads). ``recipes`` overrides the spec's list
    (one ``Recipe("custom", opts)`` when the user set options explicitly).
    """
    if not 0.0 < float(target) <= 1.0:
        raise ConfigError(f"the agreement target is a fraction in (0, 1]; got {target}")
    src, dst = Path(src), Path(dst)
    todo = tuple(recipes) if recipes else spec.recipes
    calib, held = split_holdout(calibration, holdout)
    ref_logits = (reference or spec.infer(src))(held)
    trials: list[Trial] = []
    paths: dict[str, Path] = {}
    work = Path(tempfile.mkdtemp(prefix=".recipes-", dir=_mkdir(dst.parent)))
    try:
        for recipe in todo:
            start = time.perf_counter()
            try:
                path = _try(spec, recipe, src, work, dst.name, calibration=calib, card=card)
                logits = spec.infer(path)(held)
            except (ExportError, ConfigError) as exc:
                trials.append(Trial(recipe, None, time.perf_counter() - start, str(exc)))
                log.warning("%s recipe %s failed: %s", spec.name, recipe.name, exc)
                continue
            score = agreement(ref_logits, logits)
            trial = Trial(
                recipe, score, time.perf_counter() - start,
                logit_error=logit_error(ref_logits, logits),
                agrees=tuple((ref_logits.argmax(1) == np.asarray(logits).argmax(1)).tolist()),
            )  # fmt: skip
            trials.append(trial)
            log.info("%s recipe %s: agreement %.2f%%", spec.name, recipe.name, 100 * score)
            paths[recipe.name] = path
            if score >= target:
                break
        if not paths:
            raise ExportError(
                f"{src}: every {spec.name} INT8 recipe failed ("
                + "; ".join(f"{t.recipe.name}: {t.error}" for t in trials)
                + ")"
            )
        met = [t for t in trials if t.agreement is not None and t.agreement >= target]
        kept = settle(met[0], trials) if met else best_trial(trials, len(held))
        reason = kept_reason(kept, met[0] if met else None)
        log.info("%s: kept %s (%s)", spec.name, kept.recipe.name, reason)
        path = paths[kept.recipe.name]
        score = float(kept.agreement or 0.0)
        result = SearchResult(
            _promote(path, dst), kept.recipe, score, float(target), bool(met),
            len(held), calib.count, tuple(trials), reason,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _record(spec, result)
    return result


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _record(spec: QuantizerSpec, result: SearchResult) -> None:
    """Warn when the target was missed; write recipe + agreement into the artifact's card."""
    tried = ", ".join(
        f"{t.recipe.name} {'failed' if t.agreement is None else f'{100 * t.agreement:.1f}%'}"
        for t in result.trials
    )
    if not result.met:
        warnings.warn(
            f"{spec.name} INT8: no recipe reached {100 * result.target:.1f}% top-1 agreement "
            f"with FP32 on {result.holdout_images} held-out calibration images; kept "
            f"{result.recipe.name!r} at {100 * result.agreement:.1f}% (tried: {tried})",
            QuantizationWarning,
            stacklevel=3,
        )
    from ._artifact import source_card

    card = source_card(result.artifact)
    quant = dict(card.extra.get("quantization") or {})
    quant.update(
        recipe=result.recipe.name,
        recipe_options=dict(result.recipe.options),
        kept_because=result.reason,
        agreement=round(result.agreement, 4),
        agreement_target=result.target,
        agreement_images=result.holdout_images,
        calibration_images=result.calibration_images,
        recipes_tried=[t.to_dict() for t in result.trials],
    )
    metrics = {**card.metrics, "int8_top1_agreement": round(result.agreement, 4)}
    spec.restamp(
        result.artifact, card.replace(extra={**card.extra, "quantization": quant}, metrics=metrics)
    )
