"""Scoring and choosing among quantization trials (the judge of :mod:`.recipes`' search).

Why a module of its own: how a recipe is *judged* (top-1 agreement with FP32 on held-out
images, the continuous logit error, and what counts as a real difference on a few dozen
images) is a statistical question separate from how recipes are *run*; tests and other
searches (the sensitivity pass) use the metrics without the search.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ExportError

if TYPE_CHECKING:
    from .recipes import Recipe


@dataclass(frozen=True)
class Trial:
    recipe: Recipe
    agreement: float | None  # None when the recipe failed
    seconds: float
    error: str = ""
    logit_error: float | None = None  # ||q - f||^2 / ||f||^2: the tie-break between equals
    agrees: tuple[bool, ...] = field(default=(), repr=False, compare=False)  # per image

    @property
    def closeness(self) -> float:
        """Smaller is closer to FP32 (failed recipes last)."""
        return self.logit_error if self.logit_error is not None else float("inf")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "recipe": self.recipe.name,
            "agreement": None if self.agreement is None else round(self.agreement, 4),
            "seconds": round(self.seconds, 1),
        }
        if self.logit_error is not None:
            out["logit_error"] = float(f"{self.logit_error:.3g}")
        return {**out, **({"error": self.error} if self.error else {})}


def agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Fraction of rows whose arg-max (top-1 class) is the same in both logit arrays."""
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape:
        raise ExportError(f"logit shapes differ: {reference.shape} vs {candidate.shape}")
    return float((reference.argmax(1) == candidate.argmax(1)).mean())


def logit_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Relative squared error of the logits: separates recipes of equal agreement."""
    ref = np.asarray(reference, np.float64)
    return float(
        ((np.asarray(candidate, np.float64) - ref) ** 2).sum() / max((ref**2).sum(), 1e-12)
    )


def best_trial(trials: Sequence[Trial], images: int) -> Trial:
    """The trial to keep when none reached the target.

    Why not simply the highest agreement: on a few dozen held-out images agreement moves in
    steps of one image, and two recipes one image apart are not told apart by it (one
    binomial standard error at 97 % on 50 images is 2.4 points). Every recipe within one
    standard error (at least one image) of the best agreement counts as tied, and the tie
    goes to the logits closest to FP32 (:func:`logit_error`, continuous, so it separates
    recipes the flip count cannot); the first in recipe order wins an exact tie.
    """
    scored = [t for t in trials if t.agreement is not None]
    if not scored:
        raise ValueError("no trial was scored")
    top = max(float(t.agreement or 0.0) for t in scored)
    tolerance = max(math.sqrt(top * (1.0 - top) / max(images, 1)), 1.0 / max(images, 1))
    tied = [t for t in scored if float(t.agreement or 0.0) >= top - tolerance - 1e-9]
    return min(tied, key=lambda t: t.closeness)


def indistinguishable(a: Trial, b: Trial, alpha: float = 0.05) -> bool:
    """Whether the held-out images cannot tell two recipes' agreement apart.

    McNemar's exact test on the images where exactly one of the two agrees with FP32
    (two-sided, level ``alpha``): on 50 images, 47 vs 49 agreeing with both wrong on the
    same one is two discordant images, p = 0.5, no evidence either way.
    """
    x, y = np.asarray(a.agrees, bool), np.asarray(b.agrees, bool)
    if x.size == 0 or x.shape != y.shape:
        return False
    only_a, only_b = int((x & ~y).sum()), int((~x & y).sum())
    n = only_a + only_b
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2.0 * tail / 2.0**n) >= alpha


def settle(reached: Trial, trials: Sequence[Trial]) -> Trial:
    """The trial to keep once ``reached`` is the first to meet the target.

    Why not always ``reached``: an earlier recipe (earlier = preferred) that missed the
    target by a few held-out images may in fact be the better one. Top-1 agreement on a
    few dozen images moves in steps of a whole image, while the logit error is continuous;
    so an earlier trial whose logits are closer to FP32 and whose agreement the held-out
    images cannot tell from ``reached``'s (:func:`indistinguishable`) is kept instead.
    Measured: on the real SqueezeNet's symmetric (TensorRT) INT8, 47 vs 49 of 50 held-out
    images, logit error 0.00066 vs 0.00112, and 98.96 % vs 97.39 % agreement on 383
    photos neither had seen.
    """
    earlier = trials[: list(trials).index(reached)]
    better = [
        t
        for t in earlier
        if t.agreement is not None
        and t.closeness < reached.closeness
        and indistinguishable(t, reached)
    ]
    return min(better, key=lambda t: t.closeness) if better else reached


def kept_reason(kept: Trial, reached: Trial | None) -> str:
    """Why ``kept`` was kept, in words for the card and the report."""
    if reached is None:
        return "no recipe reached the target: the best agreement, ties to the closest logits"
    if kept is reached:
        return "the first recipe to reach the target"
    return (
        f"closer logits than {reached.recipe.name!r} (which reached the target), and the "
        "held-out images cannot tell their agreement apart (McNemar, 5%)"
    )
