"""Where a study lives, and how a killed study is put back in order.

Default: Optuna's journal file (``JournalStorage`` + ``JournalFileBackend``) in the output
directory. Every worker appends whole records under a file lock and replays the log, so
several processes on one machine share it safely; SQLite serialises writers with a database
lock that long-running trials hit as "database is locked" errors, and it must not sit on a
network filesystem. For many machines give an RDB URL (``postgresql://...``,
``mysql+pymysql://...``); those get Optuna's heartbeat, so trials of a machine that died are
failed and retried after a grace period.

A trial left RUNNING by a killed process on *this* machine is found at once by its recorded
process id and start time (no heartbeat wait), marked FAIL, and its parameters are enqueued
again so the study ends with the number of finished trials that was asked for.
"""

from __future__ import annotations

import datetime
import os
import socket
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingDependencyError

HEARTBEAT_S = 30
GRACE_S = 120
UNCLAIMED_S = 120  # a RUNNING trial with no worker recorded this long after its start is dead


def storage_url(storage: str | Path | None, out: Path) -> str:
    """The canonical storage string: a journal file path or an RDB URL."""
    if storage is None:
        return str((out / "study.journal").resolve())
    text = str(storage)
    if text.startswith(("journal:", "file:")):
        text = text.split(":", 1)[1]
    if "://" in text:
        return text
    return str(Path(text).expanduser().resolve())


def is_rdb(url: str) -> bool:
    return "://" in url


def open_storage(url: str) -> Any:
    """An Optuna storage for ``url`` (journal file path or RDB URL)."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryFailedTrialCallback
    from optuna.storages.journal import JournalFileBackend

    if not is_rdb(url):
        path = Path(url)
        if path.is_dir():
            raise ConfigError(f"--storage {url}: is a directory; give a journal file path")
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    import inspect

    # Optuna 4.9 renamed the stale-trial callback; 4.0-4.8 only know the old name.
    params = inspect.signature(RDBStorage.__init__).parameters
    name = "heartbeat_stale_trial_callback"
    name = name if name in params else "failed_trial_callback"
    callback: dict[str, Any] = {name: RetryFailedTrialCallback(max_retry=2)}
    try:
        return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, **callback)
    except ModuleNotFoundError as exc:  # the database driver (psycopg2, pymysql...)
        raise MissingDependencyError(exc.name or "database driver", "tune", url) from exc
    except (optuna.exceptions.StorageInternalError, ValueError) as exc:
        raise ConfigError(f"--storage {url}: cannot open ({exc})") from exc


# ---------------------------------------------------------------------------- liveness
def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (Linux), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks (Linux), to tell a reused pid from the original."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def worker_identity() -> dict[str, Any]:
    """Recorded on each trial: who runs it (host, pid, start time)."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _start_ticks(pid)}


def is_alive(worker: dict[str, Any]) -> bool | None:
    """Whether the worker process is alive; None when it ran on another machine."""
    if worker.get("host") != socket.gethostname():
        return None
    pid = int(worker.get("pid", 0))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    if fields and fields[0] in ("Z", "X"):  # killed, not yet reaped (no init reaps in a container)
        return False
    start = worker.get("start")
    return start is None or _start_ticks(pid) in (None, start)


def recover_stale_trials(study: Any) -> list[int]:
    """Fail RUNNING trials whose process on this machine is gone; re-enqueue their params.

    Returns the numbers of the trials failed. Only the coordinating ``tune`` process calls
    this, before it starts its workers, so a trial is never failed twice.
    """
    import optuna
    from optuna.trial import TrialState

    failed = []
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if isinstance(worker, dict):
            if is_alive(worker) is not False:
                continue
        else:  # killed before it could record itself (a worker does so within milliseconds)
            started = trial.datetime_start or now
            if (now - started).total_seconds() < UNCLAIMED_S:
                continue
        try:
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        study.enqueue_trial(
            dict(trial.params), user_attrs={"retry_of": trial.number}, skip_if_exists=False
        )
        failed.append(trial.number)
    return failed
