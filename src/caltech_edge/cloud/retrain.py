"""Retrain from what devices saw: fine-tune the previous run, compare on the same held-out set.

``retrain(RUN, data=DATASET, out=NEW)``:

1. the held-out set is the previous run's ``test`` files, resolved in the merged dataset
   (so both models are scored on exactly the same images); every other file, including
   the merged captures, is training data (``val`` stays as it was);
2. the previous run's weights and config are the starting point (``train(model=...)``);
3. both runs are evaluated on that held-out set; the new one is *not worse* when its
   top-1 is at least the old top-1 minus ``tolerance``;
4. a not-worse model is exported and verified (ONNX by default);
5. the comparison is printed by the CLI and stored in ``NEW/retrain.json``.

Deploying the exported model is :func:`caltech_edge.deploy.publisher.deploy`; the CLI
calls it only when the comparison allows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._io import atomic_write_json
from ..errors import CheckpointError


def _split_for(old_run: Any, data: Path, out: Path) -> Path:
    from ..data.datasets import open_dataset
    from ..data.splits import Split, split_from_files

    dataset = open_dataset(data)
    old = Split.load(old_run.split, dataset=dataset)
    held = {dataset.relpath(i) for i in (*old.test, *old.val)}
    train = [dataset.relpath(i) for i in range(len(dataset)) if dataset.relpath(i) not in held]
    split = split_from_files(
        dataset,
        train,
        [dataset.relpath(i) for i in old.test],
        val_list=[dataset.relpath(i) for i in old.val],
    )
    path = out.parent / (out.name + ".split.json")
    split.save(path)
    return path


def retrain(
    run: Path,
    *,
    data: Path,
    out: Path,
    epochs: int | None = None,
    learning_rate: float | None = None,
    tolerance: float = 0.0,
    formats: str = "onnx",
    progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune ``run`` on ``data`` into ``out``; compare, and export when not worse."""
    from ..config import TrainConfig
    from ..rundir import RunDir, load_torch_model
    from ..train import evaluate, train

    old = RunDir(run)
    if not old.is_run() or not old.config.is_file() or not old.split.is_file():
        raise CheckpointError(
            f"{run}: not a finished training run (needs card, weights, config, split)"
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    split_file = _split_for(old, Path(data), out)
    config = TrainConfig.from_file(old.config)
    changes: dict[str, Any] = {"split_file": str(split_file), "weights": "none"}
    if epochs is not None:
        changes["epochs"] = epochs
    if learning_rate is not None:
        changes["learning_rate"] = learning_rate
    model, card = load_torch_model(old)
    new = train(
        config.replace(**changes),
        data=data,
        out=out,
        model=model,
        card=card,
        resume=False,
        progress=progress,
    )
    before = evaluate(old, data=data, split="test")
    after = evaluate(new, data=data, split="test")
    keys = ("top1", "top5", "images")
    report: dict[str, Any] = {
        "previous_run": str(old.root),
        "new_run": str(new.root),
        "data": str(data),
        "held_out": "previous run's test split ({} images)".format(before["images"]),
        "previous": {k: before[k] for k in keys},
        "new": {k: after[k] for k in keys},
        "delta_top1": round(after["top1"] - before["top1"], 6),
        "tolerance": tolerance,
        "not_worse": not_worse(before["top1"], after["top1"], tolerance),
        "export": None,
    }
    if report["not_worse"]:
        from ..export.pipeline import export

        result = export(
            new.root, formats=formats, out=new.root / "export", data=data, progress=progress
        )
        report["export"] = {
            "dir": str(result.out),
            "artifacts": {k: str(v) for k, v in result.artifacts.items()},
            "verified": result.passed,
        }
    atomic_write_json(new.root / "retrain.json", report)
    return report


def not_worse(previous_top1: float, new_top1: float, tolerance: float = 0.0) -> bool:
    """The deployment gate: the new top-1 may drop by at most ``tolerance``."""
    return new_top1 >= previous_top1 - tolerance


def comparison_table(report: dict[str, Any]) -> str:
    rows = [("", "top-1", "top-5", "images")]
    for name in ("previous", "new"):
        m = report[name]
        rows.append(
            (name, "{:.4f}".format(m["top1"]), "{:.4f}".format(m["top5"]), str(m["images"]))
        )
    lines = ["{:<10}{:>8}{:>8}{:>8}".format(*r) for r in rows]
    verdict = "not worse: exported" if report["not_worse"] else "worse: kept the previous model"
    lines.append(
        "delta top-1 {:+.4f} (tolerance {}) -> {}".format(
            report["delta_top1"], report["tolerance"], verdict
        )
    )
    return "\n".join(lines)


def load_report(run: Path) -> dict[str, Any]:
    return json.loads((Path(run) / "retrain.json").read_text())
