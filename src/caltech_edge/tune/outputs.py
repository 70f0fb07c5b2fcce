"""What a search leaves behind: the trials table, Optuna's plots, and the best trial.

    OUT/
      trials.json | trials.csv | trials.md   every trial: state, objective, parameters
      plots/optimization_history.png, param_importances.png, parallel_coordinate.png
      best/hyperparameters.json   the best trial's config; `caltech-edge train
                                  --hyperparameters` takes it unchanged
      best/run/                   the best trial's run directory (export it as any run)
      summary.json                counts, best value/parameters, wall time, notes

Everything is rebuilt from the study in the storage, so any process that can open the
storage (the coordinator, a later ``tune`` that joins) writes the same files.
"""

from __future__ import annotations

import csv
import io
import shutil
import warnings
from pathlib import Path
from typing import Any

from .._io import atomic_write_json, atomic_write_text
from .space import SearchSpace


def trial_rows(study: Any, space: SearchSpace) -> list[dict[str, Any]]:
    """One plain dict per trial, in trial-number order."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        hp = t.user_attrs.get("hyperparameters") or dict(t.params)
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "objective": t.value if t.values else None,
                "params": {p.name: hp.get(p.name) for p in space.params},
                "epochs": t.user_attrs.get("epochs", len(t.intermediate_values) or None),
                "best_epoch": t.user_attrs.get("best_epoch"),
                "test_top1": t.user_attrs.get("test_top1"),
                "seconds": seconds,
                "retry_of": t.user_attrs.get("retry_of"),
                "worker_pid": (t.user_attrs.get("worker") or {}).get("pid"),
                "run_dir": t.user_attrs.get("run_dir"),
            }
        )
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_tables(rows: list[dict[str, Any]], out: Path, space: SearchSpace) -> None:
    names = [p.name for p in space.params]
    atomic_write_json(out / "trials.json", rows)
    head = ["number", "state", "objective", *names, "epochs", "best_epoch", "test_top1"]
    head += ["seconds", "retry_of", "worker_pid", "run_dir"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(head)
    for row in rows:
        flat = {**row, **row["params"]}
        writer.writerow(["" if flat.get(k) is None else flat[k] for k in head])
    atomic_write_text(out / "trials.csv", buffer.getvalue())
    md_head = ["#", "state", space.metric, *names, "epochs", "seconds"]
    lines = ["| " + " | ".join(md_head) + " |", "|" + "---|" * len(md_head)]
    for row in rows:
        cells = [row["number"], row["state"], row["objective"]]
        cells += [row["params"].get(n) for n in names] + [row["epochs"], row["seconds"]]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    atomic_write_text(out / "trials.md", "\n".join(lines) + "\n")


#: plot file name -> optuna.visualization.matplotlib function name
PLOTS = {
    "optimization_history.png": "plot_optimization_history",
    "param_importances.png": "plot_param_importances",
    "parallel_coordinate.png": "plot_parallel_coordinate",
}


def write_plots(study: Any, out: Path) -> dict[str, str]:
    """Optuna's matplotlib plots as PNG; returns ``{file: "ok" | why it was skipped}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    (out / "plots").mkdir(parents=True, exist_ok=True)
    status = {}
    for name, func in PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental" warnings of the matplotlib API
                ax = getattr(ovm, func)(study)
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            fig.savefig(out / "plots" / name, dpi=80, bbox_inches="tight")  # outside legends
            plt.close(fig)
            status[name] = "ok"
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few trials
            status[name] = f"skipped: {exc}"
    return status


def write_best(study: Any, out: Path) -> dict[str, Any] | None:
    """``best/hyperparameters.json`` and ``best/run`` from the best complete trial."""
    from optuna.trial import TrialState

    from ..config import TrainConfig
    from ..rundir import RunDir

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    best = study.best_trial
    run = RunDir(best.user_attrs.get("run_dir", ""))
    info: dict[str, Any] = {
        "trial": best.number,
        "value": best.value,
        "hyperparameters": best.user_attrs.get("hyperparameters", best.params),
        "run_dir": str(run.root),
    }
    target = out / "best"
    target.mkdir(parents=True, exist_ok=True)
    if not run.config.is_file():
        info["note"] = f"{run.root} is not on this machine: copy it from the machine that ran it"
        return info
    config = TrainConfig.from_file(run.config)  # validates: `train --hyperparameters` reads it
    config.save(target / "hyperparameters.json")
    tmp = target / ".run.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(run.root, tmp, ignore=shutil.ignore_patterns("checkpoints"))
    shutil.rmtree(target / "run", ignore_errors=True)
    tmp.rename(target / "run")
    info["best_run"] = str(target / "run")
    return info


def summary_table(rows: list[dict[str, Any]], space: SearchSpace, top: int = 5) -> str:
    """The closing table: the best ``top`` trials, then the count of each state."""
    reverse = space.direction == "maximize"
    done = sorted(
        (r for r in rows if r["state"] == "COMPLETE"), key=lambda r: r["objective"], reverse=reverse
    )
    names = [p.name for p in space.params]
    head = ["trial", space.metric, *names, "epochs"]
    table = [head]
    for r in done[:top]:
        cells = [_fmt(r["params"].get(n)) for n in names]
        table.append([str(r["number"]), _fmt(r["objective"]), *cells, _fmt(r["epochs"])])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    lines.append("trials: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())))
    return "\n".join(lines)
