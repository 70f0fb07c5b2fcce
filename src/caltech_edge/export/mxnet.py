"""ONNX -> MXNet ``PREFIX-symbol.json`` + ``PREFIX-0000.params`` (the DeepLens format).

``mxnet.contrib.onnx.import_model`` gives the symbol and arg/aux params; they are saved
with ``mx.model.save_checkpoint`` so the params file has MXNet's ``arg:``/``aux:`` keys and
``mx.model.load_checkpoint(prefix, 0)`` + ``mx.mod.Module`` load it exactly as the DeepLens
runtime and ``mo.optimize`` did. Any ONNX works as input: a plain one is rewritten with its
initializers listed as inputs first (MXNet's importer needs that). MXNet has no metadata
slot, so the card goes into a sidecar ``PREFIX-symbol.card.json``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .._registry import require
from ..card import ModelCard, sidecar_path
from ..errors import ExportError
from ..runtime.backends.mxnet import import_mxnet
from .onnx import INPUT_NAME, initializers_as_inputs

EPOCH = 0
TOOLCHAIN = "mxnet"  # where this runs when the core cannot import mxnet


def _absolute(dst: str | Path) -> str:
    """``dst`` for another process (keeps a trailing separator: "a folder")."""
    text = str(dst)
    folder = text.endswith(("/", os.sep))
    return str(Path(text).resolve()) + (os.sep if folder else "")


def _prefix_for(dst: str | Path) -> Path:
    """``out/`` -> ``out/model``; ``out/model-symbol.json`` -> ``out/model``; ``out/x`` -> itself."""
    as_folder = str(dst).endswith(("/", os.sep))
    dst = Path(dst)
    if as_folder or dst.is_dir():
        return dst / "model"
    if dst.name.endswith("-symbol.json"):
        return dst.with_name(dst.name[: -len("-symbol.json")])
    return dst


def onnx_to_mxnet(onnx_path: str | Path, dst: str | Path, *, card: ModelCard) -> Path:
    """Convert ``onnx_path`` to MXNet files at ``dst`` (folder, prefix or symbol path).

    Returns the ``-symbol.json`` path; the params file and card sidecar sit beside it.
    Where mxnet does not import (the core), the conversion runs in the ``mxnet`` toolchain.
    """
    from ..toolchains import needs_toolchain

    if needs_toolchain(TOOLCHAIN):
        from ..toolchains.client import call

        made = call(TOOLCHAIN, "caltech_edge.toolchains.worker:produce",
                    producer="caltech_edge.export.mxnet:onnx_to_mxnet",
                    src=str(Path(onnx_path).resolve()), dst=_absolute(dst),
                    card=card.to_dict(), options={})  # fmt: skip
        return Path(made)
    onnx = require("onnx", "torch", purpose="ONNX -> MXNet conversion")
    mx = import_mxnet()
    onnx_path = Path(onnx_path)
    prefix = _prefix_for(dst)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    card = card.replace(format="mxnet", precision="fp32", input_name=INPUT_NAME)
    with tempfile.TemporaryDirectory(prefix=".mxnet-", dir=str(prefix.parent)) as tmp:
        flavoured = Path(tmp) / "for_mxnet.onnx"
        try:
            proto = onnx.load(str(onnx_path))
        except Exception as exc:
            raise ExportError(f"{onnx_path}: cannot read as ONNX ({exc})") from exc
        onnx.save(initializers_as_inputs(proto), str(flavoured))
        try:
            sym, arg_params, aux_params = mx.contrib.onnx.import_model(str(flavoured))
        except Exception as exc:
            raise ExportError(
                f"{onnx_path}: MXNet's ONNX importer failed ({type(exc).__name__}: {exc}); "
                "export with opset 13 (the default)"
            ) from exc
        free = [a for a in sym.list_arguments() if a not in arg_params and a not in aux_params]
        if free != [INPUT_NAME]:
            raise ExportError(
                f"{onnx_path}: the imported symbol's free inputs are {free}, expected "
                f"[{INPUT_NAME!r}]; export the ONNX with caltech-edge (input named 'data')"
            )
        tmp_prefix = str(Path(tmp) / "model")
        mx.model.save_checkpoint(tmp_prefix, EPOCH, sym, arg_params, aux_params)
        symbol = Path(f"{prefix}-symbol.json")
        params = Path(f"{prefix}-{EPOCH:04d}.params")
        # params first: a reader that sees the new symbol always finds matching params.
        os.replace(f"{tmp_prefix}-{EPOCH:04d}.params", params)
        os.replace(f"{tmp_prefix}-symbol.json", symbol)
    card.save(sidecar_path(symbol))
    return symbol
