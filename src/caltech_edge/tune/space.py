"""The search space: SageMaker's automatic-model-tuning JSON as written, or a short native form.

SageMaker users already have ``HyperParameterTuningJobConfig`` files (or whole
``CreateHyperParameterTuningJob`` requests); reading them unchanged means a tuning job moves
here without a rewrite. Both forms become one :class:`SearchSpace`. Parameter *names* are
training-config keys, ours or SageMaker's (``learning_rate``, ``mini_batch_size``,
``optimizer``...); they are checked against a config in :meth:`SearchSpace.check`.
This module imports neither torch nor optuna.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config._coerce import bad_key, did_you_mean, to_float, to_int
from ..errors import ConfigError

#: objective metric -> (history key of a training epoch, natural direction)
METRICS = {
    "validation:accuracy": ("val_top1", "maximize"),
    "validation:loss": ("val_loss", "minimize"),
    "validation:top5_accuracy": ("val_top5", "maximize"),
}
_METRIC_ALIASES = {"val_top1": "validation:accuracy", "val_loss": "validation:loss"}
STRATEGIES = ("bayesian", "random", "hyperband", "grid")
PRUNERS = ("median", "hyperband", "asha", "none")
SCALINGS = {
    "auto": "auto",
    "linear": "linear",
    "logarithmic": "log",
    "log": "log",
    "reverselogarithmic": "reverse_log",
    "reverse_log": "reverse_log",
}

_NATIVE_KEYS = (
    "parameters",
    "objective",
    "direction",
    "strategy",
    "pruner",
    "trials",
    "workers",
    "seed",
    "hyperparameters",
)


def check_keys(data: Mapping[str, Any], valid: tuple[str, ...], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a JSON object, got {type(data).__name__}")
    for key in data:
        if key not in valid:
            raise bad_key(key, valid, where)


def choice(value: Any, valid: tuple[str, ...] | Mapping[str, Any], what: str) -> str:
    text = str(value).strip().lower()
    if text not in valid:
        raise ConfigError(
            f"Unknown {what} {value!r}.{did_you_mean(text, valid)} "
            f"Valid values: {', '.join(valid)}."
        )
    return text


@dataclass(frozen=True)
class Param:
    """One tuned hyperparameter: a float or int range (with scaling) or a list of choices."""

    name: str
    kind: str  # "float" | "int" | "categorical"
    low: float = 0.0
    high: float = 0.0
    scaling: str = "linear"  # "linear" | "log" | "reverse_log" (after resolving "auto")
    step: float | None = None
    values: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        where = f"parameter {self.name!r}"
        if self.kind == "categorical":
            if not self.values:
                raise ConfigError(f"{where}: Values must list at least one choice")
            return
        if not self.low < self.high and not (self.kind == "int" and self.low == self.high):
            raise ConfigError(
                f"{where}: MinValue ({self.low:g}) must be less than MaxValue ({self.high:g})"
            )
        scaling = self.scaling
        if scaling == "auto":  # SageMaker picks; we pick log for a positive range over 2+ decades
            scaling = "log" if self.low > 0 and self.high / self.low >= 100 else "linear"
            object.__setattr__(self, "scaling", scaling)
        if scaling == "log" and self.low <= 0:
            raise ConfigError(f"{where}: Logarithmic scaling needs MinValue > 0, got {self.low:g}")
        if scaling == "reverse_log" and (self.kind != "float" or not 0 <= self.low < self.high < 1):
            raise ConfigError(
                f"{where}: ReverseLogarithmic scaling is for continuous ranges within [0, 1) "
                f"(got {self.kind} {self.low:g}..{self.high:g})"
            )
        if self.step is not None and (self.step <= 0 or scaling != "linear"):
            raise ConfigError(f"{where}: step must be > 0 and needs linear scaling")

    @property
    def optuna_name(self) -> str:
        """The name Optuna sees: ``1-x`` for reverse-log parameters (it samples 1 - x)."""
        return f"1-{self.name}" if self.scaling == "reverse_log" else self.name

    def endpoints(self) -> tuple[Any, ...]:
        """Values to validate against a config: both ends of a range, or every choice."""
        if self.kind == "categorical":
            return self.values
        cast = int if self.kind == "int" else float
        return (cast(self.low), cast(self.high))

    def suggest(self, trial: Any) -> Any:
        """Sample this parameter from an ``optuna.Trial``; returns the value to train with."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.values))
        if self.kind == "int":
            step = int(self.step) if self.step else 1
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.scaling == "log"
            )
        if self.scaling == "reverse_log":  # dense near 1 (momentum 0.9 .. 0.999)
            low = max(1.0 - self.high, 1e-12)
            return 1.0 - trial.suggest_float(self.optuna_name, low, 1.0 - self.low, log=True)
        return trial.suggest_float(
            self.name, self.low, self.high, step=self.step, log=self.scaling == "log"
        )

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"name": self.name, "type": "categorical", "values": list(self.values)}
        out = {"name": self.name, "type": self.kind, "low": self.low, "high": self.high}
        out["scaling"] = self.scaling
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass(frozen=True)
class SearchSpace:
    """What to tune, how to search it and when to stop: one form for both input shapes."""

    params: tuple[Param, ...]
    metric: str = "validation:accuracy"
    direction: str = "maximize"
    strategy: str = "bayesian"
    pruner: str = "median"
    max_trials: int | None = None
    max_parallel: int | None = None
    seed: int | None = None
    min_resource: int | None = None  # Hyperband: fewest epochs before a trial may be stopped
    static: dict[str, Any] = field(default_factory=dict)  # static hyperparameters
    notes: tuple[str, ...] = ()  # accepted but unused request fields

    def __post_init__(self) -> None:
        if not self.params:
            raise ConfigError("the search space has no parameters to tune")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ConfigError(f"a parameter is listed twice in the search space: {names}")
        if self.strategy == "grid" and any(p.kind != "categorical" for p in self.params):
            raise ConfigError(
                "Strategy Grid takes CategoricalParameterRanges only (as SageMaker); "
                "use Bayesian or Random for ranges"
            )

    @property
    def history_key(self) -> str:
        return METRICS[self.metric][0]

    def grid(self) -> dict[str, list[Any]]:
        return {p.name: list(p.values) for p in self.params}

    @property
    def grid_size(self) -> int | None:
        """Points in the grid of a Grid search (its natural trial count); None otherwise."""
        if self.strategy != "grid":
            return None
        size = 1
        for p in self.params:
            size *= len(p.values)
        return size

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameters": [p.to_dict() for p in self.params],
            "metric": self.metric,
            "direction": self.direction,
            "strategy": self.strategy,
            "pruner": self.pruner,
            "max_trials": self.max_trials,
            "max_parallel": self.max_parallel,
            "seed": self.seed,
            "min_resource": self.min_resource,
            "static": self.static,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """Inverse of :meth:`to_dict` (worker processes read the space this way)."""
        params = []
        for p in data["parameters"]:
            if p["type"] == "categorical":
                params.append(Param(p["name"], "categorical", values=tuple(p["values"])))
            else:
                params.append(
                    Param(p["name"], p["type"], p["low"], p["high"], p["scaling"], p.get("step"))
                )
        rest = {k: v for k, v in data.items() if k not in ("parameters", "notes")}
        return cls(params=tuple(params), notes=tuple(data.get("notes", ())), **rest)

    def check(self, base: Any, *, source: str = "search space") -> None:
        """Every parameter must be a config key and both ends of its range valid values."""
        for param in self.params:
            for value in param.endpoints():
                try:
                    base.replace(**{param.name: value})
                except ConfigError as exc:
                    raise ConfigError(f"{source}: parameter {param.name!r}: {exc}") from None


# ---------------------------------------------------------------------------- readers
def load_space(path: str | Path) -> SearchSpace:
    """Read a search-space JSON file (SageMaker tuning config/request, or native form)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the search space ({exc})") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    try:
        return parse_space(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_space(data: Mapping[str, Any]) -> SearchSpace:
    """A :class:`SearchSpace` from any accepted shape (detected by its top-level keys)."""
    if not isinstance(data, Mapping):
        raise ConfigError("a search space must be a JSON object")
    from . import space_sagemaker

    if "HyperParameterTuningJobConfig" in data:
        return space_sagemaker.from_request(data)
    if "ParameterRanges" in data:
        return space_sagemaker.from_tuning_config(data)
    if "parameters" in data:
        return _from_native(data)
    raise ConfigError(
        "a search space needs 'ParameterRanges' (a SageMaker HyperParameterTuningJobConfig), "
        "'HyperParameterTuningJobConfig' (a CreateHyperParameterTuningJob request) or "
        "'parameters' (the native form); see examples/tuning/"
    )


def metric_name(name: Any) -> str:
    text = _METRIC_ALIASES.get(str(name), str(name))
    return choice(text, tuple(METRICS), "objective metric")


def opt_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    number = to_int(value, name)
    if number < 1:
        raise ConfigError(f"{name} must be >= 1, got {value!r}")
    return number


def _from_native(data: Mapping[str, Any]) -> SearchSpace:
    check_keys(data, _NATIVE_KEYS, "search space")
    params_in = data["parameters"]
    if not isinstance(params_in, Mapping):
        raise ConfigError("'parameters' must map names to ranges or lists of choices")
    params = tuple(_native_param(name, spec) for name, spec in params_in.items())
    metric = metric_name(data.get("objective", "validation:accuracy"))
    direction = data.get("direction", METRICS[metric][1])
    strategy = choice(data.get("strategy", "bayesian"), STRATEGIES, "strategy")
    default_pruner = "hyperband" if strategy == "hyperband" else "median"
    static = data.get("hyperparameters") or {}
    if not isinstance(static, Mapping):
        raise ConfigError("'hyperparameters' must be a JSON object of static config keys")
    return SearchSpace(
        params=params,
        metric=metric,
        direction=choice(direction, ("maximize", "minimize"), "direction"),
        strategy=strategy,
        pruner=choice(data.get("pruner", default_pruner), PRUNERS, "pruner"),
        max_trials=opt_int(data.get("trials"), "trials"),
        max_parallel=opt_int(data.get("workers"), "workers"),
        seed=None if data.get("seed") is None else to_int(data["seed"], "seed"),
        static=dict(static),
    )


def _native_param(name: str, spec: Any) -> Param:
    if isinstance(spec, list):
        return Param(name, "categorical", values=tuple(spec))
    if not isinstance(spec, Mapping):
        raise ConfigError(f"parameter {name!r}: give a list of choices or {{'low':..,'high':..}}")
    check_keys(spec, ("type", "low", "high", "log", "scaling", "step", "values"), name)
    if "values" in spec:
        return Param(name, "categorical", values=tuple(spec["values"]))
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"parameter {name!r} needs 'low' and 'high' (or 'values')")
    is_int = all(
        isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("low", "high")
    )
    kind = choice(spec.get("type", "int" if is_int else "float"), ("float", "int"), "type")
    scaling = "log" if spec.get("log") else spec.get("scaling", "linear")
    scaling = SCALINGS[choice(scaling, SCALINGS, "scaling")]
    conv = to_int if kind == "int" else to_float
    step = spec.get("step")
    return Param(
        name,
        kind,
        conv(spec["low"], f"{name} low"),
        conv(spec["high"], f"{name} high"),
        scaling,
        None if step is None else to_float(step, f"{name} step"),
    )
