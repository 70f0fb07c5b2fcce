"""The whole pipeline in one call: data -> train -> prune -> export/quantize -> package -> device.

``caltech-edge quickstart`` is what a new user runs first. Every stage goes through the same
files a user would pass between the individual commands (run directories, export
directories with cards), so the quickstart doubles as an end-to-end check of the seams.
Without ``data`` it generates the synthetic default dataset and says so everywhere.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from ._io import atomic_write_json, atomic_write_text
from .errors import ConfigError

if TYPE_CHECKING:
    from .benchmark import BenchmarkResult
    from .config import TrainConfig
    from .export.pipeline import ExportResult
    from .rundir import RunDir

log = logging.getLogger(__name__)

ALL_FORMATS = ("onnx", "mxnet", "openvino", "openvino-fp16", "onnx-int8", "openvino-int8")
PRUNED_FORMATS = ("onnx", "openvino", "openvino-int8")


@dataclass(frozen=True)
class QuickstartConfig:
    """Defaults sized for a 2-core CPU: the synthetic run finishes in a few minutes."""

    data: Path | None = None  # None = generate the synthetic default
    out: Path = Path("quickstart-out")
    classes: int = 6  # synthetic only
    per_class: int = 48  # synthetic only
    arch: str = "resnet18"
    weights: str | None = None  # None = "none" on synthetic data, "imagenet" on real data
    image_size: int | None = None  # None = 64 on synthetic data, 224 on real data
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 0.05
    train_per_class: int = 30
    val_per_class: int = 4
    prune_amount: float = 0.5
    finetune_epochs: int = 3
    video_frames: int = 48
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.prune_amount < 1:
            raise ConfigError(f"prune_amount must be in (0, 1), got {self.prune_amount}")
        if self.epochs < 1 or self.video_frames < 1:
            raise ConfigError("epochs and video_frames must be >= 1")

    @property
    def synthetic(self) -> bool:
        return self.data is None


class _Stages:
    """Numbered stage headers with wall times: the quickstart's progress display."""

    def __init__(self, total: int, echo: Callable[[str], None]) -> None:
        self.total, self.echo, self.n, self.times = total, echo, 0, {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.n += 1
        self.echo(f"[{self.n}/{self.total}] {name} ...")
        start = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - start, 1)
        self.echo(f"[{self.n}/{self.total}] {name} done in {self.times[name]:.1f} s")


def broker_reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections there (we then publish over MQTT)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def write_demo_video(data: Path, split_file: Path, path: Path, *, frames: int) -> Path:
    """A short camera-like MJPEG video (640x480 BGR) made of the run's test images."""
    from .data.datasets import open_dataset
    from .data.splits import Split

    ds = open_dataset(data)
    test = Split.load(split_file, dataset=ds).test
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    if not writer.isOpened():
        raise ConfigError(f"{path}: OpenCV cannot write an MJPG video here")
    try:
        for i in range(frames):
            rgb, _ = ds[test[i % len(test)]]
            frame = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (640, 480))
            writer.write(frame)
    finally:
        writer.release()
    return path


def _run_device(model_path: Path, video: Path, out: Path, cfg: QuickstartConfig) -> dict[str, Any]:
    """Run the device loop on the video; publish to a local broker if one runs, else to a file."""
    from .runtime.buffer import open_state
    from .runtime.capture import RetrainCapture
    from .runtime.loop import run
    from .runtime.predictor import load_model
    from .runtime.publish import FilePublisher, MqttPublisher, close_all, default_topic
    from .runtime.sources import open_source
    from .runtime.stream import MjpegStream

    model = load_model(model_path)
    results = out / "results.jsonl"
    publishers: list[Any] = [FilePublisher(results)]
    target = f"file {results}"
    mqtt = broker_reachable(cfg.mqtt_host, cfg.mqtt_port)
    buffer, sequencer = open_state(out / "device-state", outbox=mqtt)
    if buffer is not None:
        topic = default_topic("caltech-edge-quickstart")
        publishers.append(MqttPublisher(cfg.mqtt_host, cfg.mqtt_port, topic=topic, buffer=buffer))
        target += f" and MQTT {cfg.mqtt_host}:{cfg.mqtt_port} topic {topic}"
    source = open_source(str(video))
    stream = MjpegStream(out / "results.mjpeg")
    capture = RetrainCapture(out / "captured", threshold=0.6, max_files=100)
    try:
        stats = run(source, model, publishers=publishers, sequencer=sequencer,
                    device="caltech-edge-quickstart", stream=stream, capture=capture)  # fmt: skip
    finally:
        delivered = close_all(publishers, timeout=20.0)
        stream.close()
        source.close()
        sequencer.close()
        if buffer is not None:
            buffer.close()
    return {**stats, "delivered_all": delivered, "published_to": target, "model": str(model_path)}


# The modules the stages use, imported in this order before stage 1: see _import_stage_modules.
_STAGE_MODULES = (
    ".benchmark",
    ".compress.prune_run",
    ".config",
    ".data.datasets",
    ".data.report",
    ".data.synth",
    ".export.package",
    ".export.pipeline",
    ".train",
)


def _import_stage_modules() -> None:
    """Load every stage's module up front rather than when its stage starts.

    A missing framework (torch, ...) then fails before OUT is created or stage 1 is
    announced, and the one-off import time is not billed to whichever stage imports first.
    """
    for name in _STAGE_MODULES:
        importlib.import_module(name, __package__)


def _prepare_data(
    cfg: QuickstartConfig, out: Path, echo: Callable[[str], None]
) -> tuple[Path, dict[str, Any]]:
    """Synthesize the default dataset (or take ``cfg.data``) and check it before training.

    Checking first shows the user what the run will learn from (and what was skipped) up
    front, instead of a decode error minutes into training.
    """
    from .data.datasets import open_dataset
    from .data.report import check_dataset, format_report
    from .data.synth import synthesize

    if cfg.synthetic:
        data = synthesize(out / "data", classes=cfg.classes, per_class=cfg.per_class,
                          size=96, seed=cfg.seed)  # fmt: skip
    else:
        data = Path(cfg.data)
    report = check_dataset(open_dataset(data), progress=cfg.progress)
    echo(format_report(report))
    summary = {k: report[k] for k in ("name", "synthetic", "classes", "images")}
    summary["skipped"] = len(report["skipped"])
    return data, summary


def _train_config(cfg: QuickstartConfig) -> TrainConfig:
    """Training settings whose defaults depend on the data.

    Synthetic shapes learn from scratch at a small size; real photos need ImageNet
    weights, the usual 224 px and colour augmentation.
    """
    from .config import TrainConfig

    return TrainConfig(
        arch=cfg.arch,
        weights=cfg.weights or ("none" if cfg.synthetic else "imagenet"),
        image_size=cfg.image_size or (64 if cfg.synthetic else 224),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        scheduler="cosine",
        warmup_epochs=1,
        train_per_class=cfg.train_per_class,
        val_per_class=cfg.val_per_class,
        augmentation="crop" if cfg.synthetic else "crop_color",
        precision="auto",
        seed=cfg.seed,
    )


def _train_and_evaluate(
    cfg: QuickstartConfig, data: Path, out: Path, echo: Callable[[str], None]
) -> tuple[RunDir, dict[str, Any]]:
    """Train the run every later stage starts from, and report its test accuracy."""
    from .train import evaluate, train

    run = train(_train_config(cfg), data=data, out=out / "run", progress=cfg.progress)
    result = evaluate(run, data=data)
    summary = {"run": str(run.root), "top1": result["top1"], "top5": result["top5"],
               "test_images": result["images"]}  # fmt: skip
    echo(
        f"test top-1 {result['top1']:.3f}, top-5 {result['top5']:.3f} on {result['images']} images"
    )
    return run, summary


def _prune_and_evaluate(
    cfg: QuickstartConfig, run: RunDir, data: Path, out: Path
) -> tuple[RunDir, dict[str, Any]]:
    """Prune ``run`` into its own run directory, fine-tuning, and report its test scores.

    The confusion matrix and per-class scores are dropped: the summary compares headline
    numbers between the runs.
    """
    from .compress.prune_run import prune_run
    from .train import evaluate

    pruned = prune_run(run, out=out / "run-pruned", amount=cfg.prune_amount, structured=True,
                       steps=2, finetune_epochs=cfg.finetune_epochs, data=data,
                       progress=cfg.progress)  # fmt: skip
    summary = {"run": str(pruned.root), **evaluate(pruned, data=data, split="test")}
    summary.pop("confusion", None)
    summary.pop("per_class", None)
    return pruned, summary


def _export_both(
    run: RunDir, pruned: RunDir, data: Path, out: Path
) -> tuple[ExportResult, dict[str, Any]]:
    """Export the run to every format and the pruned run to ``PRUNED_FORMATS``.

    Returns the run's export (the device stage picks its model from it) and the
    ``export`` and ``export_pruned`` summary entries.
    """
    from .export.pipeline import export

    exported = export(run.root, formats=ALL_FORMATS, out=out / "export", data=data)
    pruned_export = export(
        pruned.root, formats=PRUNED_FORMATS, out=out / "export-pruned", data=data
    )
    return exported, {
        "export": {
            name: {"artifact": str(path), **exported.reports[name].to_dict()}
            for name, path in exported.artifacts.items()
        },
        "export_pruned": {n: str(p) for n, p in pruned_export.artifacts.items()},
    }


def _package_for_deeplens(out: Path) -> dict[str, str]:
    """Package the full export the way a DeepLens deployment takes it."""
    from .export.package import package

    model_tar, lambda_zip = package(out / "export", out=out / "deeplens")
    return {"model": str(model_tar), "lambda": str(lambda_zip)}


def _device_demo(
    cfg: QuickstartConfig,
    data: Path,
    run: RunDir,
    exported: ExportResult,
    out: Path,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """Run the device loop on a video of the test images, as a camera would feed it.

    Prefers the int8 OpenVINO model (the quantized model a small device would run), else
    ONNX when the export has no ``openvino-int8`` artifact.
    """
    video = write_demo_video(data, run.split, out / "demo.avi", frames=cfg.video_frames)
    device_model = exported.artifacts.get("openvino-int8", exported.artifacts["onnx"])
    device = _run_device(device_model, video, out, cfg)
    echo(f"{device.get('published', '?')} results published to "
         f"{device['published_to']}")  # fmt: skip
    return device


def _benchmark_both(cfg: QuickstartConfig, data: Path, out: Path) -> BenchmarkResult:
    """Benchmark both exports into one table (saved under OUT).

    The baselines are timed once, with the full export; the pruned rows are renamed so
    they sit next to the formats they came from.
    """
    from .benchmark import benchmark

    bench = benchmark(out / "export", data=data, iters=30, warmup=5)
    pruned_bench = benchmark(out / "export-pruned", data=data, iters=30, warmup=5, baselines=False)
    bench.rows += [
        replace(r, format=f"pruned{cfg.prune_amount:.0%}-{r.format}") for r in pruned_bench.rows
    ]
    bench.save(out)
    return bench


def _write_summary(out: Path, kind: str, table: str, summary: dict[str, Any]) -> None:
    """Write ``summary.md`` (the benchmark table) and ``summary.json`` (everything).

    The JSON round trip with ``default=str`` turns paths and other objects into strings.
    """
    atomic_write_text(out / "summary.md", f"# caltech-edge quickstart ({kind} data)\n\n{table}")
    atomic_write_json(out / "summary.json", json.loads(json.dumps(summary, default=str)))


def _echo_result(
    echo: Callable[[str], None], kind: str, out: Path, table: str, times: dict[str, float]
) -> None:
    """The closing lines: where everything went, the benchmark table, the stage times."""
    echo("")
    echo(f"caltech-edge quickstart on {kind} data: {out}")
    echo(table)
    echo(f"Stage times (s): {times}")


def quickstart(cfg: QuickstartConfig, *, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage; returns (and writes to ``OUT/summary.json``) what each produced."""
    _import_stage_modules()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    stages = _Stages(8, echo)
    summary: dict[str, Any] = {"config": {k: str(v) for k, v in asdict(cfg).items()}}
    data_step = "synthesize the SYNTHETIC default dataset" if cfg.synthetic else f"check {cfg.data}"

    with stages.stage("data: " + data_step):
        data, summary["data"] = _prepare_data(cfg, out, echo)
    with stages.stage("train"):
        run, summary["train"] = _train_and_evaluate(cfg, data, out, echo)
    with stages.stage(f"prune {cfg.prune_amount:.0%} of channels + fine-tune"):
        pruned, summary["prune"] = _prune_and_evaluate(cfg, run, data, out)
    with stages.stage("export + quantize + verify: " + ", ".join(ALL_FORMATS)):
        exported, exports = _export_both(run, pruned, data, out)
        summary.update(exports)
    with stages.stage("package for DeepLens"):
        summary["package"] = _package_for_deeplens(out)
    with stages.stage("device runtime on a generated video"):
        summary["device"] = _device_demo(cfg, data, run, exported, out, echo)
    with stages.stage("benchmark every format against PyTorch and raw ONNX Runtime"):
        bench = _benchmark_both(cfg, data, out)
        summary["benchmark"] = bench.to_dict()
    with stages.stage("summary"):
        table = bench.markdown()
        kind = "SYNTHETIC" if cfg.synthetic else "real"
    # written once every stage has closed, so summary.json holds all eight stage times,
    # as the returned summary and the closing lines do
    summary["stage_seconds"] = dict(stages.times)
    _write_summary(out, kind, table, summary)
    _echo_result(echo, kind, out, table, stages.times)
    return summary
