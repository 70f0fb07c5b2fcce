"""``tune(...)``: the coordinator. Resolve the settings, open (or join) the study, put a killed
study back in order, start K worker processes, show progress, write the outputs.

The coordinator itself trains nothing: workers are separate processes started with
``python -m caltech_edge.tune.worker``, in the coordinator's process group, so stopping
the ``tune`` command (Ctrl-C, ``kill -- -PGID``) stops its workers too, and the next
``tune`` with the same ``--out``/``--storage`` resumes from what the storage holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import CaltechEdgeError, ConfigError
from . import outputs
from .space import SearchSpace, load_space, parse_space
from .spec import TuneSpec

DEFAULT_TRIALS = 20
DEFAULT_STUDY = "caltech-edge"


@dataclass
class TuneResult:
    """What :func:`tune` returns: where things are and what was found."""

    out: Path
    study: str
    storage: str
    best: dict[str, Any] | None
    counts: dict[str, int]
    rows: list[dict[str, Any]] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)
    recovered: list[int] = field(default_factory=list)  # trials failed as stale, then retried
    wall_seconds: float = 0.0
    feature_cache: str = ""
    space: SearchSpace | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-trial rows: those are in trials.json)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("rows", "space")}
        out["out"] = str(self.out)
        if self.space is not None:
            out.update(metric=self.space.metric, direction=self.space.direction)
            out["notes"] = list(self.space.notes)
        return out

    def summary(self) -> str:
        """The closing table (best trials, counts) and where the best config went."""
        space = self.space
        if space is None:
            return ""
        text = outputs.summary_table(self.rows, space)
        if self.best is not None:
            text += (
                f"\nbest: trial {self.best['trial']} {space.metric} {self.best['value']:.4f}; "
                f"retrain with --hyperparameters {self.out / 'best' / 'hyperparameters.json'}"
            )
        return text


def _base_config(
    hyperparameters: str | Path | TrainConfig | None,
    space: SearchSpace,
    overrides: dict[str, Any] | None,
    source: str = "search space",
) -> TrainConfig:
    """Static hyperparameters: file (ours or SageMaker's), then the space's, then overrides."""
    if isinstance(hyperparameters, TrainConfig):
        base = hyperparameters
    elif hyperparameters is not None:
        base = TrainConfig.from_file(hyperparameters)
    else:
        base = TrainConfig()
    if space.static:
        base = base.replace(**space.static)
    if overrides:
        base = base.replace(**overrides)
    from ..frameworks.base import get_framework

    if not getattr(get_framework(base.framework.value), "epoch_callback", False):
        raise ConfigError(
            f"framework {base.framework.value!r} does not report epochs, which pruning needs; "
            "tune a framework that does (torch)"
        )
    space.check(base, source=source)  # names and range ends first: the likeliest mistakes
    if base.val_per_class < 1 and not base.split_file:
        raise ConfigError(
            f"the objective {space.metric} needs a validation split: set val_per_class "
            "(e.g. --set val_per_class=5 or in the hyperparameters file)"
        )
    return base


def _open_study(spec: TuneSpec) -> Any:
    """Create the study or join it; a study made for another space is refused."""
    import optuna

    from .storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=spec.study,
        storage=open_storage(spec.storage),
        direction=spec.space.direction,  # type: ignore[arg-type]  # checked in space.py
        load_if_exists=True,
    )
    fingerprint = {"parameters": spec.space.to_dict()["parameters"], "metric": spec.space.metric}
    stored = study.user_attrs.get("space")
    if stored is None:
        study.set_user_attr("space", fingerprint)
    elif stored != fingerprint:
        raise ConfigError(
            f"study {spec.study!r} in {spec.storage} was made for another search space; "
            "use a new --study name (or the original space file)"
        )
    return study


def _start_workers(spec_path: Path, spec: TuneSpec) -> list[tuple[subprocess.Popen, Path]]:
    import caltech_edge

    env = dict(os.environ)
    src = str(Path(caltech_edge.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    if spec.threads:
        env["OMP_NUM_THREADS"] = str(spec.threads)
    logs = Path(spec.out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for index in range(spec.workers):
        log = logs / f"worker-{os.getpid()}-{index}.log"
        with open(log, "wb") as fh:
            cmd = [sys.executable, "-m", "caltech_edge.tune.worker", str(spec_path), str(index)]
            procs.append((subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env), log))
    return procs


def _counts(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def _best_text(study: Any) -> str:
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return "-"
    return f"{study.best_value:.4f}"


def _watch(study: Any, spec: TuneSpec, procs: list, progress: bool) -> None:
    """Poll the storage until every worker has exited; the bar shows done/best/pruned."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    bar = tqdm(total=spec.trials, unit="trial", desc="tune", disable=not progress)
    try:
        while True:
            running = [p for p, _ in procs if p.poll() is None]
            counts = _counts(study)
            done = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
            bar.n = min(done, spec.trials)
            bar.set_postfix(
                best=_best_text(study),
                pruned=counts.get("PRUNED", 0),
                running=counts.get("RUNNING", 0),
                refresh=False,
            )
            bar.refresh()
            if not running:
                break
            time.sleep(1.0)
    except KeyboardInterrupt:
        for p, _ in procs:
            p.terminate()
        for p, _ in procs:
            p.wait()
        raise
    finally:
        bar.close()
    failed = [(p.returncode, log) for p, log in procs if p.returncode != 0]
    if failed:
        code, log = failed[0]
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        last = lines[-1] if lines else "no output"
        raise CaltechEdgeError(f"a tune worker exited with status {code}: {last} (log: {log})")


def _trial_count(space: SearchSpace, trials: int | None) -> int:
    """--trials, else MaxNumberOfTrainingJobs, else 20; a grid is never searched past its size."""
    count = int(trials or space.max_trials or DEFAULT_TRIALS)
    size = space.grid_size
    if size is None:
        return count
    return min(count, size) if trials or space.max_trials else size


def tune(
    *,
    data: str | Path,
    space: str | Path | SearchSpace | dict[str, Any],
    out: str | Path,
    trials: int | None = None,
    workers: int | None = None,
    storage: str | Path | None = None,
    study: str = DEFAULT_STUDY,
    hyperparameters: str | Path | TrainConfig | None = None,
    overrides: dict[str, Any] | None = None,
    pruner: str | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> TuneResult:
    """Search ``space`` on the dataset at ``data``; every trial is a training run under ``out``.

    ``space`` is a SageMaker tuning JSON (``HyperParameterTuningJobConfig`` or a whole
    ``CreateHyperParameterTuningJob`` request) or the native form, as a path or parsed.
    ``trials``/``workers`` default to the space's ``ResourceLimits``
    (``MaxNumberOfTrainingJobs``/``MaxParallelTrainingJobs``). The study lives in
    ``storage`` (default: the journal file ``out/study.journal``) under the name ``study``;
    calling again with the same storage and study resumes it, or joins it from another
    machine. Static hyperparameters come from ``hyperparameters`` (a file, ours or
    SageMaker's, or a TrainConfig), then the space's own, then ``overrides``.
    """
    from .samplers import PRUNERS
    from .storage import recover_stale_trials, storage_url

    started = time.perf_counter()
    if isinstance(space, SearchSpace):
        parsed = space
    elif isinstance(space, dict):
        parsed = parse_space(space)
    else:
        parsed = load_space(space)
    source = "search space" if isinstance(space, SearchSpace | dict) else str(space)
    base = _base_config(hyperparameters, parsed, overrides, source)
    pruner_name = str(pruner or parsed.pruner)
    PRUNERS.entry(pruner_name)  # unknown names: an error listing the valid ones
    n_trials = _trial_count(parsed, trials)
    n_workers = int(workers or parsed.max_parallel or 1)
    if n_trials < 1 or n_workers < 1:
        raise ConfigError(f"--trials and --workers must be >= 1, got {n_trials}, {n_workers}")
    from .objective import plan_feature_cache

    cache, reason = plan_feature_cache(base, parsed)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    spec = TuneSpec(
        data=str(Path(data).resolve()),
        out=str(out),
        space=parsed,
        base=base,
        storage=storage_url(storage, out),
        study=study,
        trials=n_trials,
        workers=n_workers,
        pruner=pruner_name,
        cache=cache,
        cache_reason=reason,
        threads=threads if threads is not None else max(1, (os.cpu_count() or 1) // n_workers),
        seed=parsed.seed,
    )
    optuna_study = _open_study(spec)
    recovered = recover_stale_trials(optuna_study)
    if optuna_study.get_trials(deepcopy=False):  # resuming or joining: fresh sampler seeds
        spec = TuneSpec(**{**spec.__dict__, "seed": None})
    spec_path = spec.save(out / "tune.json")
    if progress:
        print(
            f"tune: study {spec.study!r} in {spec.storage}; {n_trials} trials, "
            f"{n_workers} worker(s), pruner {pruner_name}; feature cache {reason}"
        )
        if recovered:
            print(f"tune: trials {recovered} were left running by a killed process: retrying")
    _watch(optuna_study, spec, _start_workers(spec_path, spec), progress)
    return _finish(optuna_study, spec, recovered, started, progress)


def _finish(
    study: Any, spec: TuneSpec, recovered: list[int], started: float, progress: bool
) -> TuneResult:
    from .._io import atomic_write_json

    out = Path(spec.out)
    rows = outputs.trial_rows(study, spec.space)
    outputs.write_tables(rows, out, spec.space)
    plots = outputs.write_plots(study, out)
    best = outputs.write_best(study, out)
    result = TuneResult(
        out=out,
        study=spec.study,
        storage=spec.storage,
        best=best,
        counts=_counts(study),
        rows=rows,
        plots=plots,
        recovered=recovered,
        wall_seconds=time.perf_counter() - started,
        feature_cache=spec.cache_reason,
        space=spec.space,
    )
    atomic_write_json(out / "summary.json", result.to_dict())
    return result
