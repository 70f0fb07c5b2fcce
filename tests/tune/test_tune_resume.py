"""The done-when test: 2 worker processes share one journal storage, the median pruner stops
at least one trial, the whole ``tune`` process group is SIGKILLed mid-search and a second
``tune`` finishes the study without rerunning finished trials (trials the kill interrupted
are failed and retried with the same parameters), then ``caltech-edge train`` retrains from
``best/hyperparameters.json``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tune_helpers import TINY, cli, cli_env

from caltech_edge.config import TrainConfig
from caltech_edge.rundir import RunDir
from caltech_edge.tune.storage import is_alive

optuna = pytest.importorskip("optuna")
TRIALS = 6
PNG = b"\x89PNG\r\n\x1a\n"


def _study(out: Path):
    from caltech_edge.tune.storage import open_storage

    return optuna.load_study(
        study_name="caltech-edge", storage=open_storage(str(out / "study.journal"))
    )


def _finished(study) -> dict:
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return {t.number: t for t in study.get_trials(states=done)}


def _wait_for_progress(out: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    """Until >= 2 trials finished while another is running (so the kill interrupts one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "tune exited before it could be killed"
        if (out / "study.journal").is_file():
            study = _study(out)
            running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
            if len(_finished(study)) >= 2 and any("worker" in t.user_attrs for t in running):
                return
        time.sleep(0.5)
    raise AssertionError("the search made no progress in time")


@pytest.fixture(scope="module")
def searched(tune_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("tune-resume")
    space = work / "space.json"
    space.write_text(
        json.dumps(
            {
                "objective": "validation:loss",
                "pruner": "median",
                "seed": 0,
                "hyperparameters": TINY,
                "parameters": {
                    "learning_rate": {"low": 1e-5, "high": 0.3, "log": True},
                    "optimizer": ["sgd", "adam"],
                },
            }
        )
    )
    out = work / "out"
    args = cli("tune", "--data", str(tune_data), "--space", str(space), "--out", str(out))
    args += ["--trials", str(TRIALS), "--workers", "2", "--threads", "1", "--no-progress"]
    first = subprocess.Popen(args, env=cli_env(), start_new_session=True)
    try:
        _wait_for_progress(out, first)
        before = _study(out)
        killed_running = [
            t
            for t in before.get_trials(states=(optuna.trial.TrialState.RUNNING,))
            if "worker" in t.user_attrs
        ]
        finished = _finished(before)
        stamps = {
            n: RunDir(t.user_attrs["run_dir"]).metrics.stat().st_mtime_ns
            for n, t in finished.items()
        }
        os.killpg(first.pid, signal.SIGKILL)  # the coordinator and both workers, at once
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    second = subprocess.run(args, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    return {
        "out": out,
        "data": tune_data,
        "first_pids": {
            t.user_attrs["worker"]["pid"] for t in [*finished.values(), *killed_running]
        },
        "finished": finished,
        "stamps": stamps,
        "killed_running": killed_running,
        "after": _study(out),
        "stdout": second.stdout,
    }


def test_two_workers_shared_one_storage(searched):
    assert len(searched["first_pids"]) == 2
    workers = [t.user_attrs["worker"] for t in searched["after"].trials if "worker" in t.user_attrs]
    assert all(is_alive(w) is False for w in workers)  # SIGKILL of the group reached every worker


def test_resume_keeps_finished_trials_and_retries_killed_ones(searched):
    after = searched["after"]
    for number, old in searched["finished"].items():
        new = after.trials[number]
        assert (new.state, new.values, new.params) == (old.state, old.values, old.params)
        run = RunDir(new.user_attrs["run_dir"])
        assert run.metrics.stat().st_mtime_ns == searched["stamps"][number]  # not rerun
    assert searched["killed_running"], "the kill should have interrupted a running trial"
    for old in searched["killed_running"]:
        assert after.trials[old.number].state == optuna.trial.TrialState.FAIL
        retries = [t for t in after.trials if t.user_attrs.get("retry_of") == old.number]
        assert len(retries) == 1 and retries[0].params == old.params
        assert retries[0].state.is_finished()
    states = [t.state for t in after.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    assert TRIALS <= len(_finished(after)) <= TRIALS + 1  # +1: a race between the two workers
    assert states.count(optuna.trial.TrialState.PRUNED) >= 1


def test_outputs_tables_plots_best(searched):
    out, after = searched["out"], searched["after"]
    rows = json.loads((out / "trials.json").read_text())
    assert [r["number"] for r in rows] == [t.number for t in after.trials]
    assert {r["state"] for r in rows} >= {"COMPLETE", "PRUNED", "FAIL"}
    csv_lines = (out / "trials.csv").read_text().splitlines()
    assert csv_lines[0].startswith("number,state,objective,learning_rate,optimizer")
    assert len(csv_lines) == len(rows) + 1
    md = (out / "trials.md").read_text()
    assert "| validation:loss |" in md and md.count("PRUNED") >= 1
    for name in ("optimization_history.png", "param_importances.png", "parallel_coordinate.png"):
        assert (out / "plots" / name).read_bytes()[:8] == PNG
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["trial"] == after.best_trial.number
    assert summary["best"]["value"] == pytest.approx(after.best_value)
    assert RunDir(out / "best" / "run").is_run()
    best_cfg = TrainConfig.from_file(out / "best" / "hyperparameters.json")
    assert best_cfg.learning_rate == pytest.approx(after.best_trial.params["learning_rate"])
    assert best_cfg.optimizer.value == after.best_trial.params["optimizer"]
    assert "trial" in searched["stdout"] and "best: trial" in searched["stdout"]


def test_retrain_from_best_hyperparameters(searched, tmp_path):
    out = searched["out"]
    hp = out / "best" / "hyperparameters.json"
    result = subprocess.run(
        cli(
            "train",
            "--data",
            str(searched["data"]),
            "--hyperparameters",
            str(hp),
            "--out",
            str(tmp_path / "retrain"),
            "--no-progress",
            "--json",
        ),
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    retrained = TrainConfig.from_file(tmp_path / "retrain" / "config.json")
    assert retrained.to_dict() == TrainConfig.from_file(hp).to_dict()
    best_history = json.loads((out / "best" / "run" / "metrics.json").read_text())["history"]
    history = json.loads(result.stdout)["history"]
    assert len(history) == len(best_history)  # same epochs: the same training, rerun
    assert history[0]["val_loss"] == pytest.approx(best_history[0]["val_loss"], rel=1e-4)
