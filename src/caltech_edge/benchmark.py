"""Every format and precision side by side, with the baselines users would otherwise run.

Like Ultralytics' benchmark mode: for each artifact of an export directory, file size,
top-1 on the run's test split, median and p90 latency and images/s through our runtime
layer (``EdgeModel.predict_tensor``: inference + softmax + top-k). Measured in the same
process and the same run: PyTorch eager FP32 of the same weights and raw ONNX Runtime on
the plain ONNX file (an ``InferenceSession`` with no caltech-edge code around it), and, for
each format whose backend registers a ``raw_call``, that framework's own bare call on the
same file, on the very engine our runtime loaded (LiteRT ``set_tensor``/``invoke``/
``get_tensor``, ExecuTorch ``execute``, ONNX Runtime ``run``; input prepared once; two
XNNPACK instances of one file can differ by 25-75 % here, see ``litert.raw_call``):
``vs_raw`` is our runtime's cost over it, for the
whole ``predict_tensor`` (logits to the JSON-ready top-k), and ``infer_vs_raw`` for the
backend call alone (the float tensor in, logits out: what replaces the bare call). A row
whose runtime ``takes_pixels`` (full-integer LiteRT) is timed from the uint8 crop, the input
its frames reach it with, since ``predict()`` never makes a float tensor for it. So the
ratios printed are honest comparisons on this machine at this moment.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._bench import machine_info, markdown_table, paired_ratios, time_interleaved
from ._io import atomic_write_json, atomic_write_text
from .card import ModelCard
from .errors import CaltechEdgeError
from .rundir import RunDir

log = logging.getLogger(__name__)

COLUMNS = ("format", "backend", "precision", "size_mb", "top1", "median_ms", "p90_ms",
           "images_per_s", "vs_pytorch", "vs_onnxruntime", "vs_raw", "infer_vs_raw")  # fmt: skip
PYTORCH = "pytorch-eager (baseline)"
RAW_ORT = "onnxruntime-raw (baseline)"


@dataclass(frozen=True)
class BenchRow:
    format: str
    backend: str
    precision: str
    size_mb: float | None
    top1: float | None
    median_ms: float
    p90_ms: float
    images_per_s: float
    baseline: bool = False


@dataclass
class BenchmarkResult:
    rows: list[BenchRow]
    source: str
    images: int  # images behind each top-1 (0 = no data given)
    image_size: int
    machine: dict[str, Any] = field(default_factory=machine_info)
    raw: dict[str, str] = field(default_factory=dict)  # format -> its raw-call baseline row
    steady: dict[str, float] = field(default_factory=dict)  # format -> vs_raw, paired blocks
    steady_infer: dict[str, float] = field(default_factory=dict)  # format -> infer_vs_raw
    skipped: dict[str, str] = field(default_factory=dict)  # format -> why it was not timed

    def _ratio(self, row: BenchRow, name: str) -> float | None:
        base = next((r for r in self.rows if r.format == name), None)
        return None if base is None else base.median_ms / row.median_ms

    def table_rows(self) -> list[dict[str, Any]]:
        """Rows with the speed-up over each baseline (>1 = faster than the baseline)."""
        return [
            {
                **asdict(r),
                "vs_pytorch": self._ratio(r, PYTORCH),
                "vs_onnxruntime": self._ratio(r, RAW_ORT),
                "vs_raw": self.steady.get(r.format),  # every raw row has one (benchmark())
                "infer_vs_raw": self.steady_infer.get(r.format),
            }
            for r in self.rows
        ]

    def markdown(self) -> str:
        head = (
            f"Source: `{self.source}`; input 1x3x{self.image_size}x{self.image_size}; "
            f"top-1 on {self.images} test images; latency = batch 1, median of repeated calls; "
            f"CPU: {self.machine['cpu']} ({self.machine['cores']} cores).\n"
            "vs_* = baseline median / row median (higher is faster); vs_raw (predict_tensor: "
            "top-k out) and infer_vs_raw (the backend call: logits out) from the row and its "
            "bare framework call timed again alone, in paired short blocks; a row whose "
            "runtime takes pixels (full-integer LiteRT) from the uint8 crop its frames give it."
            "\n\n"
        )
        tail = "".join(f"\nNot timed here: {name} ({why})." for name, why in self.skipped.items())
        return (
            head + markdown_table(self.table_rows(), COLUMNS) + "\n" + tail + ("\n" if tail else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "images": self.images,
            "image_size": self.image_size,
            "machine": self.machine,
            "rows": self.table_rows(),
            "raw_baselines": self.raw,
            "not_timed": self.skipped,
            "vs_raw_method": "predict_tensor, infer and the bare call alone: 6 x iters calls "
            "each in blocks of 15, order reversed every round; the median of per-round "
            "ratios",
        }

    def save(self, out: str | Path) -> dict[str, Path]:
        """benchmark.json, benchmark.md and accuracy_vs_latency.png under ``out``."""
        out = Path(out)
        paths = {
            "json": atomic_write_json(out / "benchmark.json", self.to_dict()),
            "markdown": atomic_write_text(out / "benchmark.md", self.markdown()),
        }
        plot = plot_accuracy_vs_latency(self.rows, out / "accuracy_vs_latency.png")
        if plot is not None:
            paths["plot"] = plot
        return paths


def plot_accuracy_vs_latency(rows: Sequence[BenchRow], path: Path) -> Path | None:
    """Scatter of top-1 against median latency; None when nothing has an accuracy."""
    points = [r for r in rows if r.top1 is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    # A legend, not text labels: formats of equal accuracy sit on one line and labels collide.
    for i, r in enumerate(points):
        ax.scatter(r.median_ms, 100 * r.top1, marker="s" if r.baseline else "o", s=60,
                   color=plt.cm.tab20(i % 20), label=r.format, alpha=0.9)  # fmt: skip
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.margins(x=0.15, y=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("median latency, batch 1 (ms, log scale)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Accuracy vs latency on this CPU")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _artifact_size_mb(path: Path) -> float:
    """Bytes of the artifact and the weight files beside it (.bin, .params, external data)."""
    stem = path.name.split("-symbol.json")[0].split(".")[0]
    files = [p for p in path.parent.iterdir() if p.is_file() and p.name.startswith(stem)]
    files = [p for p in files if not p.name.endswith(".card.json")]
    return sum(p.stat().st_size for p in files) / 1e6


def _eval_set(card: ModelCard, run: RunDir | None, data: str | Path | None, limit: int):
    """(NCHW batch, labels in card order) from the run's test split, or None without data."""
    if data is None:
        return None
    from .data.datasets import open_dataset
    from .data.loader import iter_batches
    from .data.splits import Split
    from .export.verify import label_map, load_images

    if run is None or not run.split.is_file():
        images = load_images(card, data=data, limit=limit)
        return images.batch, images.labels
    ds = open_dataset(data, drop_clutter=bool(card.extra.get("drop_clutter", False)))
    split = Split.load(run.split, dataset=ds)
    indices = split.test[:limit] if limit else split.test
    if not indices:
        raise CaltechEdgeError(f"{run.split}: the test split is empty; nothing to measure on")
    mapping = label_map(ds.classes, card)
    batches = list(iter_batches(ds, indices, card.preprocess, batch_size=64))
    return (np.concatenate([b for b, _ in batches]),
            mapping[np.concatenate([y for _, y in batches])])  # fmt: skip


def _top1(infer, batch: np.ndarray, labels: np.ndarray) -> float:
    hits = sum(int(np.argmax(infer(x[None]))) == int(y) for x, y in zip(batch, labels))
    return hits / len(labels)


def _resolve(source: Path) -> tuple[Path, RunDir | None]:
    """(export dir, run dir or None) for an export directory or a run directory."""
    summary = source / "export.json"
    if summary.is_file():
        meta = json.loads(summary.read_text(encoding="utf-8"))
        run = meta.get("run")
        return source, RunDir(run) if run and RunDir(run).is_run() else None
    if RunDir(source).is_run():
        return source / "export", RunDir(source)
    raise CaltechEdgeError(
        f"{source}: neither an export directory (export.json) nor a run directory (card.json "
        "+ weights); pass the --out of `caltech-edge export` or of `caltech-edge train`"
    )


def benchmark(
    source: str | Path,
    *,
    data: str | Path | None = None,
    formats: Sequence[str] | None = None,
    iters: int = 50,
    warmup: int = 10,
    max_images: int = 200,
    baselines: bool = True,
    threads: int | None = None,
) -> BenchmarkResult:
    """Benchmark an export directory (or a run: exported first into ``RUN/export``).

    ``data`` enables top-1 (on the run's test split when the run is known) and the INT8
    rows when a run is exported here (their calibration needs training images).
    """
    from .export.formats import FORMATS

    threads = threads or os.cpu_count() or 1
    export_dir, run = _resolve(Path(source))
    if not (export_dir / "export.json").is_file():
        from .export.pipeline import export

        wanted = [n for n, f in FORMATS.items() if data is not None or not f.needs_calibration]
        log.info("exporting %s to %s first", run.root, ", ".join(wanted))
        export(run.root, formats=wanted, out=export_dir, data=data)
    meta = json.loads((export_dir / "export.json").read_text(encoding="utf-8"))
    card = ModelCard.from_dict(meta["card"], source=str(export_dir / "export.json"))
    names = [n for n in meta["formats"] if formats is None or n in formats]
    evalset = _eval_set(card, run, data, max_images)
    probe = (evalset[0][:1] if evalset is not None
             else np.random.default_rng(0).standard_normal(card.input_shape).astype(np.float32))  # fmt: skip

    # name -> (backend, precision, size_mb, infer(batch) -> logits, what is timed, baseline)
    candidates: dict[str, tuple[str, str, float, Any, Any, bool]] = {}
    onnx_path = None
    if baselines:
        candidates, onnx_path = _baselines(run, card, export_dir, meta, probe, threads)
    raw_rows: dict[str, str] = {}  # format -> the name of its raw-call row
    infers: dict[str, Any] = {}  # format -> its backend call alone (logits out)
    skipped: dict[str, str] = {}  # format -> why it is not timed on this machine
    for name in names:
        entry = meta["formats"][name]
        path = export_dir / entry["artifact"]
        model, why = _load_runnable(entry, path, threads)
        if model is None:
            skipped[name] = why
            log.warning("%s: not timed on this machine (%s)", name, why)
            continue
        x = _frame_input(model, probe[0], card)
        candidates[name] = (entry["backend"], entry["precision"], _artifact_size_mb(path),
                            model.runtime.infer, lambda m=model, x=x: m.predict_tensor(x), False)  # fmt: skip
        infers[name] = lambda m=model, x=x: m.logits(x[None])
        if baselines and RAW_ORT in candidates and path == onnx_path:
            raw_rows[name] = RAW_ORT  # the bare session on this very file is already timed
            continue
        raw_call = (
            _raw_call(entry["backend"], path, probe, threads, model.runtime) if baselines else None
        )
        if raw_call is not None:
            raw_rows[name] = f"{name} raw {entry['backend']}"
            candidates[raw_rows[name]] = (entry["backend"], entry["precision"], candidates[name][2],
                                     None, raw_call, True)  # fmt: skip

    fns = {n: c[4] for n, c in candidates.items()}
    timings = time_interleaved(fns, warmup=warmup, iters=iters)
    steady, steady_infer = _steady_vs_raw(fns, infers, raw_rows, warmup=warmup, iters=iters)
    rows = []
    for name, (backend, precision, size, infer, _, baseline) in candidates.items():
        top1 = _top1(infer, *evalset) if evalset is not None and infer is not None else None
        t = timings[name]
        rows.append(BenchRow(name, backend, precision, size, top1, t.median_ms, t.p90_ms,
                             t.per_second, baseline))  # fmt: skip
        log.info("%-28s %8.3f ms  top-1 %s", name, t.median_ms, top1)
    return BenchmarkResult(rows, str(source), 0 if evalset is None else len(evalset[1]),
                           card.preprocess.image_size, raw=raw_rows, steady=steady,
                           steady_infer=steady_infer, skipped=skipped)  # fmt: skip


def _frame_input(model: Any, chw: np.ndarray, card: ModelCard) -> np.ndarray:
    """What a frame reaches ``model`` as: ``chw``, or the uint8 RGB crop behind it for a
    runtime that takes pixels (normalize() is invertible, so rounding recovers it exactly)."""
    if not getattr(model, "takes_pixels", False):
        return chw
    from .data.transforms import denormalize

    pixels = np.clip(np.rint(denormalize(chw, card.preprocess)), 0, 255)
    return np.ascontiguousarray(pixels, dtype=np.uint8)  # HWC in memory, as crop_rgb gives


def _load_runnable(entry: dict[str, Any], path: Path, threads: int) -> tuple[Any, str]:
    """(the loaded model, "") or (None, why) for an artifact that does not run on this
    machine: one the export could only check structurally or not run at all (Core ML off
    macOS, an Edge TPU model without the compiler), or one no backend loads here."""
    from .runtime.predictor import load_model

    verification = entry.get("verification")
    if isinstance(verification, dict) and not verification.get("images"):
        extra = verification.get("extra") or {}
        return None, str(extra.get("note") or "checked structurally only, not run")
    try:
        return load_model(path, backend=entry["backend"], threads=threads), ""
    except CaltechEdgeError as exc:
        return None, str(exc)


def _baselines(
    run: RunDir | None,
    card: ModelCard,
    export_dir: Path,
    meta: dict[str, Any],
    probe: np.ndarray,
    threads: int,
) -> tuple[dict[str, tuple[str, str, float, Any, Any, bool]], Path | None]:
    """PyTorch eager (when the run is known) and a bare ONNX Runtime session on the plain
    ONNX file (when exported): the rows every format is compared with. Returns the
    candidates and that ONNX file's path (a row on the same file needs no raw call)."""
    candidates: dict[str, tuple[str, str, float, Any, Any, bool]] = {}
    baseline = None
    if run is not None:
        from .frameworks.base import get_framework

        baseline = get_framework(card.framework).eager_baseline(run, threads=threads)
    if baseline is not None:
        eager, size = baseline
        candidates[PYTORCH] = ("torch", "fp32", size, eager, lambda: eager(probe), True)
    if "onnx" not in meta["formats"]:
        return candidates, None
    import onnxruntime as ort

    onnx_path = export_dir / meta["formats"]["onnx"]["artifact"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name

    def raw(x: np.ndarray) -> np.ndarray:
        return session.run(None, {feed: x})[0]

    size = _artifact_size_mb(onnx_path)
    candidates[RAW_ORT] = ("onnxruntime", "fp32", size, raw, lambda: raw(probe), True)
    return candidates, onnx_path


def _steady_vs_raw(
    fns: dict[str, Any],
    infers: dict[str, Any],
    raw_rows: dict[str, str],
    *,
    warmup: int,
    iters: int,
) -> tuple[dict[str, float], dict[str, float]]:
    """``vs_raw`` and ``infer_vs_raw`` per format: the row, its backend call alone and its
    bare call, timed again by themselves in paired short blocks (:func:`paired_ratios`).

    vs_raw asks what our runtime adds per call, a few percent. In the table's blocks, each
    after another candidate, cold caches cost the side that touches more memory more than
    that. Two ratios, because work between two calls costs more than its own time here
    (caches and branch predictors are cold after an inference: top-k takes 9 us in a tight
    loop and ~37 us between two ExecuTorch calls, with one thread or two), so the top-k
    dict that ``predict_tensor`` adds is reported apart from the backend call.
    """
    steady, steady_infer = {}, {}
    rounds = max(4, 6 * iters // 15)  # about 6 x iters calls of each
    for name, raw in raw_rows.items():
        infer = f"{name} (infer)"
        ratios = paired_ratios(raw, {name: fns[name], infer: infers[name], raw: fns[raw]},
                               warmup=warmup, rounds=rounds, per_block=15)  # fmt: skip
        steady[name], steady_infer[name] = ratios[name], ratios[infer]
    return steady, steady_infer


def _raw_call(backend: str, path: Path, probe: np.ndarray, threads: int, loaded: Any) -> Any:
    """The backend's registered bare framework call on ``probe``, on the engine ``loaded``
    (our runtime) already holds, or None when the backend registers none."""
    from .runtime.backends import BACKENDS

    target = BACKENDS.entry(backend).info.get("raw_call")
    if not target:
        return None
    module, _, attr = target.partition(":")
    import importlib

    return getattr(importlib.import_module(module), attr)(path, probe, threads, loaded)
