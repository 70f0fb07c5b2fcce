"""What compression bought: top-1, size, parameters, MACs and latency of each variant.

:func:`measure_variants` runs every variant (an artifact through the runtime backends,
or a torch model in eager mode) on the same preprocessed test images and times batch-1
inference on this CPU; :func:`write_report` writes ``report.md``, ``report.json`` and
``accuracy_vs_latency.png``. :func:`compress_report` builds the usual variants of a run
(FP32, FP16, INT8 ONNX Runtime, INT8 OpenVINO, pruned-x%, pruned + INT8) end to end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Variant:
    """One model to measure: an ``artifact`` file, or an eager torch ``model``."""

    name: str
    artifact: Path | None = None
    model: Any = None  # torch.nn.Module
    backend: str | None = None
    precision: str = "fp32"
    precision_hint: str | None = None  # OpenVINO: "f32" for FP32 parity, None = device default
    params: int | None = None
    macs: int | None = None
    note: str = ""


def artifact_size(path: str | Path) -> int:
    """Bytes on disk of an artifact including its companions (.bin, -0000.params)."""
    path = Path(path)
    size = path.stat().st_size
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        size += path.with_suffix(".bin").stat().st_size
    if path.name.endswith("-symbol.json"):
        params = path.with_name(path.name.replace("-symbol.json", "-0000.params"))
        size += params.stat().st_size if params.is_file() else 0
    return size


def median_latency_ms(
    predict: Predict, sample: np.ndarray, *, repeats: int = 30, warmup: int = 5
) -> float:
    """Median wall time of ``predict(sample)`` in milliseconds (batch as given)."""
    from .._bench import time_ms

    return time_ms(lambda: predict(sample), warmup=warmup, iters=repeats).median_ms


def _predictor(variant: Variant, threads: int | None) -> tuple[Predict, str]:
    if variant.model is not None:
        from ..export.verify import torch_predictor

        return torch_predictor(variant.model.eval()), "torch-eager"
    from ..runtime.backends import open_runtime

    rt = open_runtime(
        variant.artifact,
        backend=variant.backend,
        precision_hint=variant.precision_hint,
        threads=threads,
    )
    return rt.infer, rt.name


def measure_variants(
    variants: Sequence[Variant],
    *,
    images: np.ndarray,
    labels: np.ndarray,
    repeats: int = 30,
    rounds: int = 1,
    threads: int | None = None,
    chunk: int = 1,
) -> list[dict[str, Any]]:
    """Top-1 on ``images``/``labels`` and batch-1 median latency for each variant.

    Inference runs in chunks of ``chunk`` images because static exports have batch 1.
    With ``rounds`` > 1 the variants are timed round-robin and each keeps its best
    round's median, so a busy (shared) machine slows every variant alike.
    """
    rows, predictors = [], []
    for variant in variants:
        predict, backend = _predictor(variant, threads)
        predictors.append(predict)
        logits = np.concatenate(
            [predict(images[i : i + chunk]) for i in range(0, len(images), chunk)]
        )
        top1 = float((logits.argmax(1) == labels).mean()) if len(labels) else float("nan")
        rows.append(
            {
                "variant": variant.name,
                "backend": backend,
                "precision": variant.precision,
                "precision_hint": variant.precision_hint or "",
                "top1": top1,
                "images": len(images),
                "latency_ms": float("inf"),
                "size_bytes": artifact_size(variant.artifact) if variant.artifact else None,
                "params": variant.params,
                "macs": variant.macs,
                "note": variant.note,
            }
        )
    for _ in range(max(1, int(rounds))):
        for row, predict in zip(rows, predictors):
            ms = median_latency_ms(predict, images[:1], repeats=repeats)
            row["latency_ms"] = min(row["latency_ms"], ms)
    for row in rows:
        log.info("%s: top-1 %.4f, %.2f ms", row["variant"], row["top1"], row["latency_ms"])
    return rows


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.1f}"
    if kind == "mb":
        return f"{value / 1e6:.2f}"
    if kind == "m":
        return f"{value / 1e6:.2f}"
    if kind == "g":
        return f"{value / 1e9:.3f}"
    if kind == "ms":
        return f"{value:.2f}"
    return str(value)


def to_markdown(rows: Sequence[dict[str, Any]], *, title: str = "Compression report") -> str:
    base = rows[0] if rows else {}
    lines = [
        f"# {title}",
        "",
        "| variant | backend | top-1 % | size MB | params M | GMACs | latency ms | speed-up |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        speed = base.get("latency_ms", 0) / r["latency_ms"] if r["latency_ms"] else 0
        lines.append(
            f"| {r['variant']} | {r['backend']}{' ' + r['precision_hint'] if r['precision_hint'] else ''} "
            f"| {_fmt(r['top1'], 'pct')} | {_fmt(r['size_bytes'], 'mb')} | {_fmt(r['params'], 'm')} "
            f"| {_fmt(r['macs'], 'g')} | {_fmt(r['latency_ms'], 'ms')} | {speed:.2f}x |"
        )
    if rows:
        lines += [
            "",
            f"Speed-up is relative to `{base['variant']}`; {rows[0]['images']} test images.",
        ]
        lines += [f"- {r['variant']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_latency(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.scatter(r["latency_ms"], 100 * r["top1"], s=40)
        ax.annotate(
            r["variant"],
            (r["latency_ms"], 100 * r["top1"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel("median latency, batch 1 (ms, log scale)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title("Accuracy vs latency on this CPU")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(
    rows: Sequence[dict[str, Any]],
    out: str | Path,
    *,
    title: str = "Compression report",
    info: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """``report.md``, ``report.json`` (rows + machine info) and the PNG in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = atomic_write_text(out / "report.md", to_markdown(rows, title=title))
    from .._bench import machine_info

    js = atomic_write_json(
        out / "report.json",
        {"title": title, "machine": machine_info(), **(info or {}), "rows": list(rows)},
    )
    png = plot_accuracy_vs_latency(rows, out / "accuracy_vs_latency.png")
    return {"markdown": md, "json": js, "png": png}
