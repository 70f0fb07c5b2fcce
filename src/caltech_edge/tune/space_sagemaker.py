"""SageMaker's automatic-model-tuning JSON, read as written, into a :class:`SearchSpace`.

Two shapes: a ``HyperParameterTuningJobConfig`` object, or a whole
``CreateHyperParameterTuningJob`` request (the config nested under
``HyperParameterTuningJobConfig``, static hyperparameters under
``TrainingJobDefinition.StaticHyperParameters``; AWS job settings are noted as ignored).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..config._coerce import to_float, to_int
from ..errors import ConfigError
from .space import (
    SCALINGS,
    STRATEGIES,
    Param,
    SearchSpace,
    check_keys,
    choice,
    metric_name,
    opt_int,
)

_REQUEST_KEYS = (
    "HyperParameterTuningJobName",
    "HyperParameterTuningJobConfig",
    "TrainingJobDefinition",
    "TrainingJobDefinitions",
    "WarmStartConfig",
    "Tags",
    "Autotune",
)
_CONFIG_KEYS = (
    "Strategy",
    "StrategyConfig",
    "HyperParameterTuningJobObjective",
    "ResourceLimits",
    "ParameterRanges",
    "TrainingJobEarlyStoppingType",
    "TuningJobCompletionCriteria",
    "RandomSeed",
)
_RANGE_KINDS = {
    "ContinuousParameterRanges": "float",
    "IntegerParameterRanges": "int",
    "CategoricalParameterRanges": "categorical",
}


def from_request(data: Mapping[str, Any]) -> SearchSpace:
    check_keys(data, _REQUEST_KEYS, "CreateHyperParameterTuningJob")
    static: dict[str, Any] = {}
    definition = data.get("TrainingJobDefinition")
    if isinstance(data.get("TrainingJobDefinitions"), list) and data["TrainingJobDefinitions"]:
        definition = definition or data["TrainingJobDefinitions"][0]
    if isinstance(definition, Mapping):
        static = dict(definition.get("StaticHyperParameters") or {})
    ignored = [k for k in data if not k.startswith(("HyperParameterTuningJobConfig", "Training"))]
    if isinstance(definition, Mapping):
        ignored += [
            f"TrainingJobDefinition.{k}" for k in definition if k != "StaticHyperParameters"
        ]
    space = from_tuning_config(data["HyperParameterTuningJobConfig"], static=static)
    notes = (*space.notes, *(f"{k} ignored (AWS job setting)" for k in sorted(ignored)))
    return dataclasses.replace(space, notes=notes)


def from_tuning_config(cfg: Mapping[str, Any], static: dict[str, Any] | None = None) -> SearchSpace:
    check_keys(cfg, _CONFIG_KEYS, "HyperParameterTuningJobConfig")
    strategy = choice(cfg.get("Strategy", "Bayesian"), STRATEGIES, "Strategy")
    metric, direction = _sagemaker_objective(cfg.get("HyperParameterTuningJobObjective"))
    limits = cfg.get("ResourceLimits") or {}
    check_keys(
        limits,
        ("MaxNumberOfTrainingJobs", "MaxParallelTrainingJobs", "MaxRuntimeInSeconds"),
        "ResourceLimits",
    )
    early = choice(
        cfg.get("TrainingJobEarlyStoppingType", "Off"),
        ("off", "auto"),
        "TrainingJobEarlyStoppingType",
    )
    min_resource = None
    hb = (cfg.get("StrategyConfig") or {}).get("HyperbandStrategyConfig") or {}
    if hb:
        check_keys(hb, ("MinResource", "MaxResource"), "HyperbandStrategyConfig")
        min_resource = to_int(hb.get("MinResource", 1), "MinResource")
        if "MaxResource" in hb:
            static = {**(static or {}), "epochs": hb["MaxResource"]}
    pruner = "hyperband" if strategy == "hyperband" else ("median" if early == "auto" else "none")
    notes = [f"{k} ignored" for k in ("TuningJobCompletionCriteria",) if k in cfg]
    if "MaxRuntimeInSeconds" in limits:
        notes.append("ResourceLimits.MaxRuntimeInSeconds ignored")
    return SearchSpace(
        params=_sagemaker_ranges(cfg.get("ParameterRanges")),
        metric=metric,
        direction=direction,
        strategy=strategy,
        pruner=pruner,
        max_trials=opt_int(limits.get("MaxNumberOfTrainingJobs"), "MaxNumberOfTrainingJobs"),
        max_parallel=opt_int(limits.get("MaxParallelTrainingJobs"), "MaxParallelTrainingJobs"),
        seed=opt_int(cfg.get("RandomSeed"), "RandomSeed"),
        min_resource=min_resource,
        static=dict(static or {}),
        notes=tuple(notes),
    )


def _sagemaker_objective(obj: Any) -> tuple[str, str]:
    if obj is None:
        return "validation:accuracy", "maximize"
    check_keys(obj, ("Type", "MetricName"), "HyperParameterTuningJobObjective")
    metric = metric_name(obj.get("MetricName", "validation:accuracy"))
    direction = choice(obj.get("Type", "Maximize"), ("maximize", "minimize"), "objective Type")
    return metric, direction


def _sagemaker_ranges(ranges: Any) -> tuple[Param, ...]:
    if ranges is None:
        raise ConfigError("HyperParameterTuningJobConfig needs ParameterRanges")
    check_keys(ranges, (*_RANGE_KINDS, "AutoParameters"), "ParameterRanges")
    if ranges.get("AutoParameters"):
        raise ConfigError("ParameterRanges.AutoParameters (Autotune) is not supported; list ranges")
    params = []
    for group, kind in _RANGE_KINDS.items():
        for item in ranges.get(group) or []:
            if kind == "categorical":
                check_keys(item, ("Name", "Values"), group)
                values = item.get("Values")
                if not isinstance(values, list):
                    raise ConfigError(f"{group} {item.get('Name')!r}: Values must be a list")
                params.append(Param(_name(item, group), kind, values=tuple(values)))
                continue
            check_keys(item, ("Name", "MinValue", "MaxValue", "ScalingType"), group)
            name = _name(item, group)
            low, high = _bounds(item, kind, name)
            scaling = choice(item.get("ScalingType", "Auto").lower(), SCALINGS, "ScalingType")
            params.append(Param(name, kind, low, high, SCALINGS[scaling]))
    return tuple(params)


def _name(item: Mapping[str, Any], group: str) -> str:
    name = item.get("Name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"every entry of {group} needs a Name")
    return name


def _bounds(item: Mapping[str, Any], kind: str, name: str) -> tuple[float, float]:
    conv = to_int if kind == "int" else to_float
    try:
        return conv(item["MinValue"], f"{name} MinValue"), conv(
            item["MaxValue"], f"{name} MaxValue"
        )
    except KeyError as exc:
        raise ConfigError(f"parameter {name!r} needs {exc.args[0]}") from None
