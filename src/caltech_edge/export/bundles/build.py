"""Assemble a device bundle: checked models, runtime source, pinned requirements, scripts.

Layout of ``OUT`` (every target but deeplens, which keeps its own archive + Lambda zip)::

    bundle.json          manifest: target, models (sha256, check result, export verification)
    README.md            what to install on the device, how to run, what was verified here
    card.json            the model card
    models/<format>/     each model the device takes, with everything its export wrote
    runtime/caltech_edge the device runtime source (Python 3.8-compatible, no torch)
    bin/caltech-edge     launcher for `caltech-edge infer|serve` on that source
    requirements.txt     pinned for the device: numpy, OpenCV, MQTT + the default backend
    requirements-<backend>.txt   for the other models' backends, when they differ
    install.sh device.env start.sh caltech-edge.service   (targets that run a service)

Every model is opened by its backend and run once on a probe before it is copied (or,
where it cannot run here -- Core ML off macOS -- checked structurally, and the manifest
says which).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import atomic_write_json, atomic_write_text
from ...card import ModelCard
from ...errors import BackendError, ExportError
from ..package import runtime_files
from . import templates

#: Base requirements of the device runtime, pinned to the versions verified here.
BASE_REQUIREMENTS = ("numpy==2.4.6", "opencv-python-headless==5.1.0.95", "paho-mqtt==2.2.0")
#: CLI modules the bundled launcher needs besides the runtime (they import nothing heavy);
#: ``cli/deploy.py`` + the ``deploy`` package are the device side of over-the-air deployments
#: (``infer --accept-deployments``), torch-free and Python 3.8-compatible like the runtime.
CLI_MODULES = (
    "cli/__init__.py", "cli/_common.py", "cli/runtime.py", "cli/_serve.py", "cli/deploy.py",
)  # fmt: skip
DEVICE_PACKAGES = ("deploy",)


@dataclass
class BundleModel:
    """One model going into a bundle: where it is, which backend runs it, how it was checked."""

    format: str
    path: Path  # in the export directory
    backend: str
    precision: str = ""
    verification: dict[str, Any] | None = None
    check: dict[str, Any] = field(default_factory=dict)

    @property
    def rel(self) -> str:
        """The model's path inside the bundle."""
        return f"models/{self.format}/{self.path.name}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()


def find_models(export_dir: Path, formats: tuple[str, ...]) -> list[BundleModel]:
    """The models of ``formats`` present in an export directory, in the target's order.

    ``export.json`` (written by ``caltech-edge export``) names each artifact and its
    backend; without it, the format table's artifact name under ``OUT/<format>/`` is used.
    """
    from ...runtime.backends import backend_for
    from ..formats import FORMATS

    summary = export_dir / "export.json"
    meta = json.loads(summary.read_text(encoding="utf-8")) if summary.is_file() else {}
    found = []
    for name in formats:
        entry = meta.get("formats", {}).get(name)
        if entry is not None:
            path = export_dir / entry["artifact"]
            backend, precision = entry.get("backend"), entry.get("precision", "")
        elif name in FORMATS:
            row = FORMATS[name]
            path, backend, precision = export_dir / name / row.artifact, row.backend, row.precision
        else:  # a format this install's table lacks: the model file in OUT/<format>/
            path, backend = _model_in(export_dir / name), None
            precision = "int8" if name.endswith("int8") else ""
        if path.exists():
            found.append(
                BundleModel(
                    name,
                    path,
                    backend or backend_for(path),
                    precision,
                    (entry or {}).get("verification"),
                )
            )
    return found


def _model_in(folder: Path) -> Path:
    """The one file (or .mlpackage) in ``folder`` a runtime backend recognises."""
    from ...runtime.backends import backend_for

    for candidate in sorted(folder.glob("*")) if folder.is_dir() else []:
        if candidate.name.endswith(".card.json"):
            continue
        try:
            backend_for(candidate)
            return candidate
        except BackendError:
            continue
    return folder / "missing"


def check_model(model: BundleModel, card: ModelCard) -> dict[str, Any]:
    """Open ``model`` with its backend and run it once; structural where it cannot run here."""
    from ..._registry import Entry
    from ...runtime.backends import BACKENDS, open_runtime

    entry: Entry = BACKENDS.entry(model.backend)
    try:
        runtime = open_runtime(model.path, backend=model.backend, threads=1)
    except BackendError as exc:
        structural = entry.info.get("structural_check")
        if not structural:
            raise ExportError(
                f"{model.path}: not packaged, it does not load here ({exc})"
            ) from None
        module, _, attr = structural.partition(":")
        import importlib

        found = getattr(importlib.import_module(module), attr)(model.path)
        if tuple(found.class_names) != tuple(card.class_names):
            raise ExportError(f"{model.path}: its labels differ from the export's card") from None
        return {"check": "structural", "why": str(exc).split(": ", 1)[-1]}
    logits = runtime.infer(np.zeros(card.input_shape, np.float32))
    if logits.shape != (1, card.num_classes) or not np.all(np.isfinite(logits)):
        raise ExportError(
            f"{model.path}: a probe gave logits of shape {logits.shape} (finite: "
            f"{bool(np.all(np.isfinite(logits)))}); expected (1, {card.num_classes}): re-export it"
        )
    out = {"check": "ran", "output_shape": list(logits.shape)}
    if hasattr(runtime, "input_dtype"):
        out["input_dtype"] = runtime.input_dtype
    if getattr(runtime, "layout", None):
        out["layout"] = runtime.layout
    return out


def requirements(backends: list[str]) -> dict[str, list[str]]:
    """``{file name: pinned lines}``: the default backend's file, then one per other backend."""
    from ...runtime.backends import BACKENDS

    files: dict[str, list[str]] = {}
    for i, backend in enumerate(dict.fromkeys(backends)):
        pins = list(BACKENDS.entry(backend).info.get("device_requirements", ()))
        name = "requirements.txt" if i == 0 else f"requirements-{backend}.txt"
        files[name] = [*BASE_REQUIREMENTS, *pins] if i == 0 else pins
    return files


def _write_exec(path: Path, text: str) -> None:
    atomic_write_text(path, text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def copy_runtime(out: Path) -> list[str]:
    """The runtime source + launcher; returns the bundle-relative paths written."""
    pkg = Path(__file__).resolve().parents[2]  # .../caltech_edge
    written = []
    modules = list(CLI_MODULES) + [
        path.relative_to(pkg).as_posix()
        for name in DEVICE_PACKAGES
        for path in sorted((pkg / name).glob("*.py"))
    ]
    files = runtime_files() + [("caltech_edge/" + rel, pkg / rel) for rel in modules]
    for name, path in files:
        dst = out / "runtime" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dst)
        written.append("runtime/" + name)
    _write_exec(out / "bin" / "caltech-edge", templates.LAUNCHER)
    return written


def copy_model(model: BundleModel, out: Path) -> None:
    """The model's whole export folder (card sidecar, reports, logs come along)."""
    dst = out / "models" / model.format
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(model.path.parent, dst)


def write_service(out: Path, target: str, default: BundleModel, info: dict[str, Any]) -> None:
    """install.sh, device.env, start.sh and the systemd unit for the default model."""
    subst = {
        "target": target,
        "model": default.rel,
        "backend": default.backend,
        "threads": info.get("threads", 4),
        "unit": "caltech-edge.service",
        "groups": " ".join(info.get("groups", ("video",))),
        "pip_flags": info.get("pip_flags", ""),
    }
    _write_exec(out / "install.sh", templates.INSTALL.format(**subst))
    atomic_write_text(out / "device.env", templates.DEVICE_ENV.format(**subst))
    _write_exec(out / "start.sh", templates.START.format(**subst))
    atomic_write_text(out / "caltech-edge.service", templates.UNIT.format(**subst))


def manifest(
    out: Path, target: str, models: list[BundleModel], card: ModelCard, extra: dict[str, Any]
) -> Path:
    data = {
        "target": target,
        "default_model": models[0].rel,
        "card": card.to_dict(),
        "models": [
            {
                "format": m.format,
                "path": m.rel,
                "backend": m.backend,
                "precision": m.precision,
                "sha256": _sha256(out / m.rel),
                "check": m.check,
                "export_verification": m.verification,
            }
            for m in models
        ],
        **extra,
    }
    return atomic_write_json(out / "bundle.json", data)


def write_readme(
    out: Path,
    target: str,
    description: str,
    models: list[BundleModel],
    reqs: dict[str, list[str]],
    notes: str,
) -> Path:
    """README.md: install, run, and what was checked here (the rest only on the device)."""
    lines = [f"# caltech-edge bundle: {target}", "", description, "", "## Models", ""]
    for m in models:
        v = m.verification or {}
        verified = (
            f"export verification: {'passed' if v.get('passed') else 'see export.json'}"
            if v
            else "no export verification recorded"
        )
        lines.append(
            f"- `{m.rel}` ({m.backend}, {m.precision or '?'}): checked here by "
            f"{'running it once' if m.check.get('check') == 'ran' else 'its structure'}; "
            f"{verified}"
        )
    lines += ["", "## Install", "", "```sh"]
    if (out / "install.sh").is_file():
        lines += [
            "./install.sh            # python3 -m venv venv + pip install -r requirements.txt"
        ]
    else:
        lines += ["python3 -m venv venv && venv/bin/pip install -r requirements.txt"]
    lines += [
        f"venv/bin/pip install -r {n}   # to run that backend's model"
        for n in reqs
        if n != "requirements.txt"
    ]
    lines += ["```", "", "## Run", "", "```sh"]
    if (out / "start.sh").is_file():
        lines += [
            "./start.sh --max-frames 20 --json    # settings in device.env",
            "sudo cp caltech-edge.service /etc/systemd/system/ && "
            "sudo systemctl enable --now caltech-edge",
        ]
    else:
        lines += [
            f"venv/bin/python bin/caltech-edge infer --model {models[0].rel} --source 0 --json"
        ]
    lines += ["```", ""]
    if notes:
        lines += [notes.rstrip(), ""]
    return atomic_write_text(out / "README.md", "\n".join(lines))
