"""The search space: SageMaker's tuning JSON accepted as written, the native form, and
one-line errors that list the valid keys for every mistake a user can make."""

from __future__ import annotations

import copy
import json
import math
import subprocess

import pytest
from tune_helpers import REPO, cli, cli_env

from caltech_edge.config import TrainConfig
from caltech_edge.errors import ConfigError, UnknownNameError
from caltech_edge.tune import SearchSpace, load_space, parse_space
from caltech_edge.tune.objective import plan_feature_cache
from caltech_edge.tune.samplers import PRUNERS, build_pruner, build_sampler

optuna = pytest.importorskip("optuna")
EXAMPLES = REPO / "examples" / "tuning"


@pytest.fixture
def request_json() -> dict:
    return json.loads((EXAMPLES / "sagemaker_tuning_job.json").read_text())


def test_sagemaker_request_accepted_as_written():
    space = load_space(EXAMPLES / "sagemaker_tuning_job.json")
    lr, bs, opt = space.params
    assert (lr.name, lr.kind, lr.scaling, lr.low, lr.high) == (
        "learning_rate",
        "float",
        "log",
        1e-4,
        0.5,
    )
    assert (bs.name, bs.kind, bs.low, bs.high) == ("mini_batch_size", "int", 8, 64)
    assert (opt.kind, opt.values) == ("categorical", ("sgd", "adam", "rmsprop", "nag"))
    assert (space.strategy, space.metric, space.direction) == (
        "bayesian",
        "validation:accuracy",
        "maximize",
    )
    assert (space.max_trials, space.max_parallel, space.pruner) == (12, 2, "median")
    assert any("RoleArn" in note for note in space.notes)
    base = TrainConfig().replace(**space.static)  # StaticHyperParameters, SageMaker names
    assert (base.arch, base.epochs, base.num_classes, base.image_size) == ("resnet18", 10, 257, 224)
    space.check(base)  # every range end is a valid config value


def test_bare_tuning_config_equals_the_request(request_json):
    bare = parse_space(request_json["HyperParameterTuningJobConfig"])
    full = parse_space(request_json)
    assert bare.params == full.params and bare.pruner == full.pruner
    assert bare.static == {} and full.static["num_layers"] == "18"


def test_native_example_and_roundtrip():
    space = load_space(EXAMPLES / "head_only.json")
    assert [p.name for p in space.params][:3] == ["learning_rate", "weight_decay", "batch_size"]
    assert space.params[2].kind == "int" and space.params[2].step == 16
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space


def test_hyperband_strategy_and_scalings(request_json):
    cfg = request_json["HyperParameterTuningJobConfig"]
    cfg["Strategy"] = "Hyperband"
    cfg["StrategyConfig"] = {"HyperbandStrategyConfig": {"MinResource": 2, "MaxResource": 9}}
    cfg["TrainingJobEarlyStoppingType"] = "Off"
    cfg["ParameterRanges"]["ContinuousParameterRanges"].append(
        {
            "Name": "momentum",
            "MinValue": "0.8",
            "MaxValue": "0.999",
            "ScalingType": "ReverseLogarithmic",
        }
    )
    cfg["ParameterRanges"]["ContinuousParameterRanges"].append(
        {"Name": "weight_decay", "MinValue": "0.00001", "MaxValue": "0.01", "ScalingType": "Auto"}
    )
    space = parse_space(request_json)
    assert space.pruner == "hyperband" and space.min_resource == 2 and space.static["epochs"] == 9
    momentum, wd = space.params[1], space.params[2]
    assert momentum.scaling == "reverse_log" and momentum.optuna_name == "1-momentum"
    assert wd.scaling == "log"  # Auto over three decades
    pruner = build_pruner(space.pruner, space, epochs=9, trials=12)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    study = optuna.create_study(sampler=build_sampler(space, 0))
    values = {p.name: [] for p in space.params}
    for _ in range(40):
        trial = study.ask()
        for p in space.params:
            values[p.name].append(p.suggest(trial))
        study.tell(trial, 0.0)
    assert all(0.8 <= v <= 0.999 for v in values["momentum"])
    assert sum(v > 0.98 for v in values["momentum"]) >= 10  # dense near 1, as reverse-log means
    assert all(8 <= v <= 64 and isinstance(v, int) for v in values["mini_batch_size"])
    logs = [math.log10(v) for v in values["learning_rate"]]
    assert min(logs) < -2.5 and max(logs) > -1.5  # spread over decades, not bunched at the top


def test_grid_strategy_takes_categoricals():
    space = parse_space(
        {"strategy": "grid", "parameters": {"optimizer": ["sgd", "adam"], "batch_size": [8, 16]}}
    )
    sampler = build_sampler(space, 0)
    assert isinstance(sampler, optuna.samplers.GridSampler) and space.grid_size == 4
    with pytest.raises(ConfigError, match="Grid takes CategoricalParameterRanges only"):
        parse_space(
            {"strategy": "grid", "parameters": {"learning_rate": {"low": 0.1, "high": 0.2}}}
        )


def _mutate(request: dict, path: list, value) -> dict:
    data = copy.deepcopy(request)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


C = ["HyperParameterTuningJobConfig"]
R = [*C, "ParameterRanges"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            [*C, "ParameterRange"],
            {},
            "Unknown HyperParameterTuningJobConfig key 'ParameterRange'. Did you mean 'ParameterRanges'?",
        ),
        ([*C, "Strategy"], "Bayes", "Unknown Strategy 'Bayes'. Did you mean 'bayesian'?"),
        (
            [*R, "ContinuousParameterRanges", 0, "MinValue"],
            "0.9",
            "MinValue (0.9) must be less than MaxValue (0.5)",
        ),
        (
            [*R, "ContinuousParameterRanges", 0, "MinValue"],
            "0",
            "Logarithmic scaling needs MinValue > 0",
        ),
        (
            [*R, "ContinuousParameterRanges", 0, "ScalingType"],
            "Logarithmc",
            "Did you mean 'logarithmic'?",
        ),
        (
            [*R, "IntegerParameterRanges", 0, "MaxValue"],
            "6.5",
            "mini_batch_size MaxValue must be an integer",
        ),
        (
            [*R, "CategoricalParameterRanges", 0, "Values"],
            [],
            "Values must list at least one choice",
        ),
        (
            [*C, "HyperParameterTuningJobObjective", "MetricName"],
            "validation:acc",
            "Unknown objective metric",
        ),
        ([*C, "ResourceLimits", "MaxParallelJobs"], 2, "Did you mean 'MaxParallelTrainingJobs'?"),
        (["HyperParameterTuningJobNam"], "x", "Unknown CreateHyperParameterTuningJob key"),
    ],
)
def test_bad_space_one_line_error(request_json, path, value, message):
    with pytest.raises(ConfigError) as info:
        parse_space(_mutate(request_json, path, value))
    text = str(info.value)
    assert message in text and "\n" not in text
    if "Unknown" in message and "key" in message:
        assert "Valid keys:" in text


def test_bad_parameter_names_and_values_are_checked_against_the_config():
    space = parse_space({"parameters": {"lerning_rate": {"low": 0.001, "high": 0.1}}})
    with pytest.raises(ConfigError, match=r"Did you mean 'learning_rate'.*Valid keys:"):
        space.check(TrainConfig())
    space = parse_space({"parameters": {"momentum": {"low": 0.5, "high": 1.5}}})
    with pytest.raises(ConfigError, match=r"parameter 'momentum': momentum must be in \[0, 1\)"):
        space.check(TrainConfig())
    with pytest.raises(UnknownNameError, match="Valid choices: asha, hyperband, median, none"):
        PRUNERS.entry("medain")


def test_cli_reports_bad_space_in_one_line(tmp_path, tune_data, request_json):
    bad = _mutate(request_json, [*R, "ContinuousParameterRanges", 0, "Name"], "learning_rat")
    path = tmp_path / "space.json"
    path.write_text(json.dumps(bad))
    result = subprocess.run(
        cli("tune", "--data", str(tune_data), "--space", str(path), "--out", str(tmp_path / "o")),
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{path}: parameter 'learning_rat'" in result.stderr
    assert "Did you mean 'learning_rate'?" in result.stderr


def test_head_only_spaces_use_cached_features():
    head = TrainConfig(strategy="head")
    space = load_space(EXAMPLES / "head_only.json")
    assert plan_feature_cache(head, space)[0] is True
    assert plan_feature_cache(TrainConfig(strategy="full"), space)[0] is False
    sized = parse_space({"parameters": {"image_shape": ["3,160,160", "3,224,224"]}})
    use, reason = plan_feature_cache(head, sized)
    assert use is False and "image_size" in reason
