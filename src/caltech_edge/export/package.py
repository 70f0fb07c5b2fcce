"""The DeepLens package: a model archive for the model import and a Lambda deployment zip.

``package(export_dir, out=DIR)`` writes

* ``model.tar.gz`` in the layout SageMaker's image classifier produced and DeepLens'
  "import model from SageMaker/external" accepts: ``model-symbol.json``,
  ``model-0000.params``, ``model-shapes.json`` (``[{"shape": [1, 3, H, W], "name": "data"}]``),
  ``synset.txt`` (class names, one per line, index order) and the model card ``card.json``
  (an OpenVINO IR beside the export is added under ``openvino/`` for non-DeepLens devices);
* ``lambda.zip``: ``lambda_function.py`` plus the runtime source -- the
  ``caltech_edge.runtime`` package and exactly the core modules it imports (card, errors,
  registry, io, data.transforms). No torch, no training code: the device has neither.

Both are written atomically with fixed timestamps, so the same export gives the same bytes.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

from .._io import atomic_write_bytes
from ..card import ModelCard, card_for
from ..errors import ExportError
from .mxparams import read_params_index

FIXED_MTIME = 315532800  # 1980-01-01, the earliest time a zip can hold

#: The Lambda entry point written into the zip (identical to examples/deeplens_lambda/).
LAMBDA_SOURCE = '''"""DeepLens / Greengrass Lambda: the caltech-edge device loop (infinite_infer_run style).

Configured through environment variables (MODEL_PATH, TOPIC, SOURCE, MQTT_HOST, ...);
see caltech_edge/runtime/deeplens.py. Greengrass runs this as a long-lived function: the
loop starts at import, and function_handler is the (unused) message entry point.
"""

import logging
import os

from caltech_edge.runtime.deeplens import function_handler, infinite_infer_run

logging.basicConfig(level=logging.INFO)

__all__ = ["function_handler", "infinite_infer_run"]

if os.environ.get("CALTECH_EDGE_NO_AUTORUN") != "1":
    infinite_infer_run()
'''

#: Core modules (relative to the caltech_edge package) the runtime imports; tests check
#: that this list is exactly what ``caltech_edge.runtime`` needs, no more.
CORE_MODULES = (
    "__init__.py",
    "_io.py",
    "_registry.py",
    "card.py",
    "errors.py",
    "data/__init__.py",
    "data/transforms.py",
    "data/imageheader.py",
    "data/imageio.py",
)


def _find_mxnet(export_dir: Path) -> Path:
    for pattern in ("*-symbol.json", "mxnet/*-symbol.json", "*/*-symbol.json"):
        found = sorted(export_dir.glob(pattern))
        if found:
            return found[0]
    raise ExportError(
        f"{export_dir}: no MXNet model (*-symbol.json + *-0000.params) found; DeepLens imports MXNet "
        f"models, so export one first: caltech-edge export RUN --to onnx,mxnet --out {export_dir}"
    )


def _params_for(symbol: Path) -> Path:
    prefix = symbol.name[: -len("-symbol.json")]
    params = sorted(symbol.parent.glob(prefix + "-[0-9][0-9][0-9][0-9].params"))
    if not params:
        raise ExportError(
            f"{symbol}: no {prefix}-NNNN.params beside the symbol file; re-run the MXNet export"
        )
    return params[-1]


def check_artifacts(symbol: Path, params: Path, card: ModelCard) -> None:
    """Refuse to package what cannot work on the device: caught here, not on the camera.

    The params file must be a complete MXNet NDArray list holding every weight the symbol
    names, and the card's class list must match the model's output width (the leading
    dimension of the last parameter in graph order: the classifier's bias or weight).
    """
    try:
        graph = json.loads(symbol.read_text())
        nodes = graph["nodes"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(
            f"{symbol}: not an MXNet symbol file ({exc}); re-run the MXNet export"
        ) from None
    index = read_params_index(params)
    inputs = {card.input_name or "data", "data"}
    weights = [n["name"] for n in nodes if n.get("op") == "null" and n["name"] not in inputs]
    weights = [w for w in weights if not w.endswith("_label")]
    missing = [w for w in weights if f"arg:{w}" not in index and f"aux:{w}" not in index]
    if missing:
        raise ExportError(
            f"{params}: does not belong to {symbol.name} (missing {', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}); re-run the MXNet export"
        )
    last = next((index[f"arg:{w}"] for w in reversed(weights) if f"arg:{w}" in index), None)
    if last is not None and last[0] and int(last[0][0]) != card.num_classes:
        raise ExportError(
            f"{symbol}: the model outputs {last[0][0]} classes but its card lists "
            f"{card.num_classes}; the card belongs to another model, re-run the export"
        )


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def model_archive(symbol: Path, card: ModelCard) -> bytes:
    """The bytes of ``model.tar.gz`` for an MXNet symbol file and its card."""
    params = _params_for(symbol)
    shapes = [{"shape": list(card.input_shape), "name": card.input_name or "data"}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        _tar_add(tar, "model-symbol.json", symbol.read_bytes())
        _tar_add(tar, "model-0000.params", params.read_bytes())
        _tar_add(tar, "model-shapes.json", json.dumps(shapes).encode())
        _tar_add(tar, "synset.txt", "".join(n + "\n" for n in card.class_names).encode())
        _tar_add(tar, "card.json", card.to_json().encode())
        ir = sorted(symbol.parent.parent.glob("openvino/*.xml"))
        if ir and ir[0].with_suffix(".bin").is_file():
            _tar_add(tar, "openvino/model.xml", ir[0].read_bytes())
            _tar_add(tar, "openvino/model.bin", ir[0].with_suffix(".bin").read_bytes())
            _tar_add(tar, "openvino/model.card.json", card_for(ir[0]).to_json().encode())
    return buf.getvalue()


def runtime_files() -> list:
    """(archive name, path) of every source file the Lambda needs, sorted."""
    pkg = Path(__file__).resolve().parents[1]  # .../caltech_edge
    files = [(("caltech_edge/" + rel), pkg / rel) for rel in CORE_MODULES]
    for path in sorted((pkg / "runtime").rglob("*.py")):
        files.append(("caltech_edge/" + path.relative_to(pkg).as_posix(), path))
    return files


def lambda_zip() -> bytes:
    """The bytes of the Lambda deployment zip: entry point + runtime + its core modules."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:

        def add(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)

        add("lambda_function.py", LAMBDA_SOURCE.encode())
        for name, path in runtime_files():
            add(name, path.read_bytes())
    return buf.getvalue()


def package(export_dir: str | Path, *, out: str | Path) -> tuple[Path, Path]:
    """Write ``out/model.tar.gz`` and ``out/lambda.zip`` for ``export_dir``; return both paths."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise ExportError(f"{export_dir}: not an export directory")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(
            f"--out {out} is a file; give a directory for model.tar.gz and lambda.zip"
        )
    symbol = _find_mxnet(export_dir)
    card = card_for(symbol)
    check_artifacts(symbol, _params_for(symbol), card)
    tar_path = atomic_write_bytes(out / "model.tar.gz", model_archive(symbol, card))
    zip_path = atomic_write_bytes(out / "lambda.zip", lambda_zip())
    return tar_path, zip_path
