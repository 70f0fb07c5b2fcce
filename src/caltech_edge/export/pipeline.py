"""``export(source, formats=..., out=...)``: every requested format, each verified.

The source is a run directory (torch or gluon), a ``(checkpoint, arch, classes)`` triple
for a model trained elsewhere, or a torch module with its card (e.g. a pruned model). The
formats come from :data:`caltech_edge.export.formats.FORMATS`; a format made from another
one (OpenVINO and MXNet from ONNX) pulls that one in. Layout::

    OUT/
      card.json                 the source card (with the checkpoint's sha256)
      export.json               what was written + every verification report
      onnx/model.onnx           (+ model.card.json)
      mxnet/model-symbol.json   model-0000.params, model-symbol.card.json
      openvino/model.xml        model.bin, model.card.json
      openvino-fp16/model.xml   ...

Verification runs the source once on a batch of the dataset's images and compares every
artifact with it (:mod:`caltech_edge.export.verify`); ``export.json`` is written before a
failure is raised, so the numbers are on disk either way.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_write_json
from ..card import ModelCard, read_class_names, sidecar_path
from ..errors import ConfigError, ExportError, VerificationError
from ..frameworks.base import get_framework
from ..rundir import RunDir
from ..toolchains import needs_toolchain
from .formats import DEFAULT_FORMATS, FORMATS, ExportFormat, parse_formats
from .verify import DEFAULT_IMAGES, VerifyReport, load_images, resolve_source, verify_artifact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportSource:
    """What is being exported: a torch model, or a run whose own files are the model."""

    card: ModelCard
    description: str
    model: Any = None  # torch nn.Module (eval) for torch sources
    native: Path | None = None  # a folder holding the framework's own files (gluon symbol/params)
    run: Path | None = None  # the run directory exported, when there is one (for benchmarks)
    framework: str = "torch"  # the framework axis member that produced (and exports) it

    @property
    def against(self) -> Any:
        """What verification compares artifacts with."""
        return self.model if self.model is not None else self.native


@dataclass(frozen=True)
class ExportResult:
    out: Path
    card: ModelCard
    artifacts: dict[str, Path]
    reports: dict[str, VerifyReport] = field(default_factory=dict)

    @property
    def summary(self) -> Path:
        return self.out / "export.json"

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.reports.values())


# -- sources ----------------------------------------------------------------------------
def load_checkpoint_source(
    checkpoint: str | Path,
    arch: str,
    classes: str | Path | Sequence[str],
    *,
    image_size: int | None = None,
    workdir: str | Path | None = None,
) -> ExportSource:
    """A model trained elsewhere: a torchvision state dict, or Gluon ``.params``.

    ``classes``: a file (one name per line, or ``index<TAB>name``) or a list. A ``.params``
    file is rebuilt as a Gluon ``arch`` and exported to symbol/params in ``workdir``
    (default: a new temporary folder), which then exports like a gluon run.
    """
    from ..frameworks.base import framework_for_checkpoint

    checkpoint = Path(checkpoint)
    names = (
        read_class_names(classes)
        if isinstance(classes, (str, Path))
        else tuple(str(c) for c in classes)
    )
    if image_size is None:  # the arch's own input size (240 for efficientnet_lite1)
        from ..models.architectures import ARCHITECTURES

        image_size = ARCHITECTURES[arch].input_size if arch in ARCHITECTURES else 224
    return framework_for_checkpoint(checkpoint).checkpoint_source(
        checkpoint, arch, names, image_size=image_size, workdir=workdir
    )


def state_mismatch(own: dict[str, Any], state: dict[str, Any]) -> str:
    """A short description of how ``state`` differs from the model's own keys/shapes."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" +{len(items) - 2} more" if len(items) > 2 else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:2])}{more}")
    return "; ".join(parts)


def load_run_source(run: str | Path | RunDir) -> ExportSource:
    run = run if isinstance(run, RunDir) else RunDir(run)
    if not run.card.is_file():
        raise ExportError(
            f"{run.root}: not a caltech-edge run directory (no card.json); for a model trained "
            "elsewhere use --checkpoint FILE --arch ARCH --classes FILE"
        )
    from ..frameworks.base import get_framework

    card = run.load_card()
    return get_framework(card.framework).run_source(run, card)


def resolve_export_source(source: Any, *, card: ModelCard | None = None) -> ExportSource:
    if isinstance(source, ExportSource):
        return source
    if isinstance(source, tuple) and len(source) == 3:
        return load_checkpoint_source(*source)
    if hasattr(source, "parameters") and callable(source):
        if card is None:
            raise ExportError("exporting a torch module needs card= (arch, classes, preprocessing)")
        return ExportSource(card=card, description=f"torch {card.arch}", model=source.eval())
    return load_run_source(source)


# -- producing --------------------------------------------------------------------------
def with_dependencies(formats: Sequence[ExportFormat]) -> tuple[ExportFormat, ...]:
    """Add the rows the requested ones are made from (ONNX for OpenVINO/MXNet, ...)."""
    names = {f.name for f in formats}
    stack = list(formats)
    while stack:
        made_from = stack.pop().made_from
        if made_from != "model" and made_from not in names:
            names.add(made_from)
            stack.append(FORMATS[made_from])
    return tuple(f for f in FORMATS.values() if f.name in names)


def _calibration(data: str | Path, card: ModelCard, run: Path | None) -> Any:
    """Calibration images for INT8 rows: a run's own training split when ``data`` is its
    dataset (the run's test images stay out, so its accuracy figures stay honest), else the
    training part of a fresh split of ``data`` (or every image of a plain folder)."""
    from ..data.calibration import calibration_reader
    from ..errors import DatasetError

    split = RunDir(run).split if run is not None else None
    if split is not None and split.is_file():
        try:
            return calibration_reader(data, spec=card.preprocess, batch_size=1, split=split)
        except DatasetError as exc:  # --data is another dataset: the run's split means nothing
            log.info("%s: not the dataset of %s (%s); calibrating on a fresh split", data, run, exc)
    return calibration_reader(data, spec=card.preprocess, batch_size=1)


def _produce(
    fmt: ExportFormat,
    src: ExportSource,
    dst: Path,
    artifacts: dict[str, Path],
    *,
    opset: int,
    dynamic_batch: bool,
    data: str | Path | None,
) -> Path:
    card = src.card
    framework = get_framework(src.framework)
    options = dict(fmt.options)
    if fmt.needs_calibration:
        if data is None:
            raise ExportError(
                f"format {fmt.name!r} needs calibration images: pass --data ROOT (the training "
                "dataset), or use caltech-edge quantize"
            )
        options["calibration"] = _calibration(data, card, src.run)
    if fmt.made_from == "model" or fmt.name in framework.native_formats:
        extra = {"calibration": options["calibration"]} if fmt.needs_calibration else {}
        return framework.produce(fmt, src, dst, opset=opset, dynamic_batch=dynamic_batch, **extra)
    if fmt.toolchain and needs_toolchain(fmt.toolchain):  # e.g. ONNX -> MXNet in its own env
        from ..toolchains.client import call

        made = call(fmt.toolchain, "caltech_edge.toolchains.worker:produce",
                    producer=fmt.producer, src=str(Path(artifacts[fmt.made_from]).resolve()),
                    dst=str(dst.resolve()), card=card.to_dict(), options=options)  # fmt: skip
        return Path(made)
    producer = fmt.load_producer()
    return Path(producer(artifacts[fmt.made_from], dst, card=card, **options))


def _produce_all(
    rows: Sequence[ExportFormat],
    src: ExportSource,
    out: Path,
    bar: Any,
    *,
    opset: int,
    dynamic_batch: bool,
    data: str | Path | None,
) -> dict[str, Path]:
    """Write every row's artifact in order (a row's ``made_from`` comes before it), each
    with a card sidecar, so the runtime and bundles can open any of them on its own."""
    artifacts: dict[str, Path] = {}
    for fmt in rows:
        bar.set_postfix_str(fmt.name)
        dst = out / fmt.name / fmt.artifact
        dst.parent.mkdir(parents=True, exist_ok=True)
        log.info("exporting %s -> %s", fmt.name, dst)
        path = _produce(
            fmt, src, dst, artifacts, opset=opset, dynamic_batch=dynamic_batch, data=data
        )
        artifacts[fmt.name] = path
        bar.update()
        if not sidecar_path(path).is_file():  # ONNX carries its card inside; a copy beside it
            from ..runtime.backends import open_runtime

            open_runtime(path, backend=fmt.backend).card.save(sidecar_path(path))
    return artifacts


def _verify_all(
    src: ExportSource,
    artifacts: Mapping[str, Path],
    bar: Any,
    *,
    data: str | Path | None,
    verify_images: int | None,
) -> tuple[dict[str, VerifyReport], str]:
    """Verify every artifact against one source pass on one image batch (the source is the
    slow part), unchecked: failures are gathered so export.json records them all.

    Returns the reports and where the images came from."""
    images = load_images(src.card, data=data, limit=verify_images)
    predict, _, _ = resolve_source(src.against, card=src.card)
    bar.set_postfix_str(f"source on {len(images.batch)} images")
    reference = predict(images.batch)
    reports: dict[str, VerifyReport] = {}
    for name, path in artifacts.items():
        bar.set_postfix_str(f"verify {name}")
        verifier = FORMATS[name].load_verifier() or verify_artifact
        reports[name] = verifier(
            path,
            against=src.against,
            images=images,
            reference=reference,
            backend=FORMATS[name].backend,
            check=False,
        )
        bar.update()
    return reports, images.source


def export(
    source: Any,
    *,
    formats: str | Sequence[str] = DEFAULT_FORMATS,
    out: str | Path,
    opset: int = 13,
    dynamic_batch: bool = False,
    verify: bool = True,
    data: str | Path | None = None,
    card: ModelCard | None = None,
    verify_images: int | None = DEFAULT_IMAGES,
    progress: bool = True,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> ExportResult:
    """Export ``source`` to ``formats`` under ``out``, verify each artifact, write export.json.

    ``data``: the dataset the model is for (verification images; calibration for INT8
    rows). ``progress``: a tqdm bar over the steps (stderr). ``options``: per row name,
    producer keywords over the row's defaults, e.g. ``{"tflite-int8": {"io_type": "uint8"}}``
    (checked against the producer's signature before any work). Raises
    :class:`VerificationError` (after writing export.json) when an artifact does not match
    its source within its precision's tolerance.
    """
    from tqdm.auto import tqdm

    from .onnx import check_opset

    rows = _with_options(with_dependencies(parse_formats(formats)), options or {})
    opset = check_opset(opset)
    src = resolve_export_source(source, card=card)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    src.card.save(out / "card.json")
    bar = tqdm(
        total=len(rows) * (2 if verify else 1), desc="export", unit="step", disable=not progress
    )
    artifacts = _produce_all(
        rows, src, out, bar, opset=opset, dynamic_batch=dynamic_batch, data=data
    )
    reports: dict[str, VerifyReport] = {}
    images_source = None
    if verify:
        reports, images_source = _verify_all(
            src, artifacts, bar, data=data, verify_images=verify_images
        )
    bar.close()
    result = ExportResult(out=out, card=src.card, artifacts=artifacts, reports=reports)
    _write_summary(result, src, opset=opset, dynamic_batch=dynamic_batch, data=images_source)
    failed = [r for r in reports.values() if not r.passed]
    if failed:
        raise VerificationError(
            "verification failed (details in {}):\n  {}".format(
                result.summary, "\n  ".join(r.summary() for r in failed)
            )
        )
    return result


def _with_options(
    rows: Sequence[ExportFormat], options: Mapping[str, Mapping[str, Any]]
) -> list[ExportFormat]:
    """``rows`` with each one's producer options overridden from ``options[row name]``."""
    names = [r.name for r in rows]
    for name in options:
        if name not in names:
            raise ConfigError(
                f"--option {name}.*: {name!r} is not among the formats exported "
                f"({', '.join(names)}); add it to --to"
            )
    return [r.with_options(options.get(r.name, {})) for r in rows]


def _write_summary(
    result: ExportResult, src: ExportSource, *, opset: int, dynamic_batch: bool, data: str | None
) -> Path:
    formats = {}
    for name, path in result.artifacts.items():
        fmt = FORMATS[name]
        formats[name] = {
            "artifact": str(path.relative_to(result.out)),
            "files": sorted(str(p.relative_to(result.out)) for p in path.parent.iterdir()),
            "backend": fmt.backend,
            "precision": fmt.precision,
            "verification": result.reports[name].to_dict() if name in result.reports else None,
        }
    return atomic_write_json(
        result.summary,
        {
            "source": src.description,
            "run": str(src.run.resolve()) if src.run is not None else None,
            "framework": src.framework,
            "source_sha256": src.card.source_sha256,
            "opset": opset,
            "dynamic_batch": dynamic_batch,
            "verification_data": data,
            "created": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
            "card": src.card.to_dict(),
            "formats": formats,
        },
    )
