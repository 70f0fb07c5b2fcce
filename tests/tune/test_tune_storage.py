"""Stale-trial recovery on the default journal storage: a RUNNING trial whose process is gone
is failed and its parameters are enqueued again; live or remote trials are left alone."""

from __future__ import annotations

import subprocess
import sys

import pytest

from caltech_edge.errors import ConfigError
from caltech_edge.tune.storage import (
    is_alive,
    open_storage,
    recover_stale_trials,
    storage_url,
    worker_identity,
)

optuna = pytest.importorskip("optuna")


def test_dead_local_workers_are_failed_and_retried(tmp_path):
    url = storage_url(None, tmp_path)
    assert url.endswith("study.journal")
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_worker = {**worker_identity(), "pid": int(dead.stdout), "start": None}
    me = worker_identity()
    elsewhere = {**me, "host": me["host"] + "-other-machine"}
    trials = []
    for worker in (dead_worker, me, elsewhere):
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
        trial.set_user_attr("worker", worker)
        trials.append(trial)
    assert is_alive(dead_worker) is False and is_alive(me) is True and is_alive(elsewhere) is None

    failed = recover_stale_trials(optuna.load_study(study_name="s", storage=open_storage(url)))
    assert failed == [trials[0].number]
    after = optuna.load_study(study_name="s", storage=open_storage(url))
    states = [t.state for t in after.trials]
    TS = optuna.trial.TrialState
    assert states == [TS.FAIL, TS.RUNNING, TS.RUNNING, TS.WAITING]
    retry = after.trials[3]
    assert retry.user_attrs["retry_of"] == trials[0].number
    assert retry.system_attrs["fixed_params"] == after.trials[0].params
    assert recover_stale_trials(after) == []  # idempotent: nothing is failed twice


def test_storage_urls(tmp_path):
    assert storage_url("journal:" + str(tmp_path / "j.log"), tmp_path) == str(tmp_path / "j.log")
    assert storage_url("postgresql://u@h/db", tmp_path) == "postgresql://u@h/db"
    with pytest.raises(ConfigError, match="is a directory"):
        open_storage(str(tmp_path))
