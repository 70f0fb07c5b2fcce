"""Hyperparameter search on Optuna: ``tune(data=, space=, out=)`` and ``caltech-edge tune``.

Each trial is an ordinary training run; the search space is read in SageMaker's automatic
model tuning shape as written, or a short native form (see ``docs/tuning.md``). Importing
this package imports neither torch nor optuna.
"""

from __future__ import annotations

from .._registry import lazy_getattr

_EXPORTS = {
    "tune": "caltech_edge.tune.run",
    "TuneResult": "caltech_edge.tune.run",
    "SearchSpace": "caltech_edge.tune.space",
    "Param": "caltech_edge.tune.space",
    "load_space": "caltech_edge.tune.space",
    "parse_space": "caltech_edge.tune.space",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
