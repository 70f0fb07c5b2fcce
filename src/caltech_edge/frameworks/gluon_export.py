"""Gluon exports: symbol/params (the DeepLens MXNet format) and ONNX (for ONNX Runtime/OpenVINO).

Route chosen for Gluon -> ONNX (see docs/gluon.md): MXNet 1.9.1's own converter
(``mxnet.onnx.mx2onnx``), called through its graph builder with the requested opset, with
the ``onnx.mapping`` shim of :mod:`caltech_edge.frameworks._mxnet_compat` so it runs with
today's onnx. We then name the input ``data``, move weights out of the graph inputs (ONNX
Runtime constant-folds only true initializers), embed the model card in
``metadata_props`` and require ``onnx.checker`` to pass. Pinning onnx 1.15 instead would
hold the whole environment back; going through PyTorch would need a second model
definition. OpenVINO 2023+ has no MXNet front end, so IR from Gluon goes through this ONNX.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, sha256_file
from ..card import METADATA_KEY, ModelCard, card_for, sidecar_path
from ..errors import ExportError
from ..rundir import RunDir
from ._mxnet_compat import fast_onnx_initializers, import_mxnet, import_mxnet_onnx

SUPPORTED_OPSETS = (12, 13)  # the opsets mxnet.onnx.mx2onnx has translations for
INPUT_NAME = "data"
OUTPUT_NAME = "logits"


def export_symbol(net: Any, prefix: str | Path, *, image_size: int) -> tuple[Path, Path]:
    """Hybridize ``net`` and write ``PREFIX-symbol.json`` + ``PREFIX-0000.params``.

    The files are written to a temporary folder first and renamed into place, so a killed
    export never leaves a symbol without its params. The input is named ``data``.
    """
    mx = import_mxnet()
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    net.hybridize(static_alloc=False)
    net(mx.nd.zeros((1, 3, int(image_size), int(image_size))))
    tmp = Path(tempfile.mkdtemp(prefix=".gluon-export-", dir=prefix.parent))
    try:
        net.export(str(tmp / "m"), epoch=0)
        symbol, params = symbol_params_paths(prefix)
        (tmp / "m-0000.params").replace(params)
        (tmp / "m-symbol.json").replace(symbol)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return symbol, params


def symbol_params_paths(prefix: str | Path) -> tuple[Path, Path]:
    prefix = Path(prefix)
    return (
        prefix.with_name(prefix.name + "-symbol.json"),
        prefix.with_name(prefix.name + "-0000.params"),
    )


def _resolve(source: Any) -> tuple[Path, Path, ModelCard | None]:
    """A run dir / prefix / ``-symbol.json`` path -> (symbol, params, card if found)."""
    if isinstance(source, RunDir):
        source = source.root
    path = Path(source)
    if path.is_dir():
        run = RunDir(path)
        symbol, params = run.symbol, run.params
    elif path.name.endswith("-symbol.json"):
        symbol = path
        params = path.with_name(path.name[: -len("-symbol.json")] + "-0000.params")
    else:
        symbol, params = symbol_params_paths(path)
    for f in (symbol, params):
        if not f.is_file():
            raise ExportError(
                f"{f}: not found. gluon_to_onnx needs a Gluon run directory, a prefix "
                "PREFIX (PREFIX-symbol.json + PREFIX-0000.params) or a -symbol.json path."
            )
    card = None
    for candidate in (symbol.parent / "card.json", sidecar_path(symbol)):
        if candidate.is_file():
            card = ModelCard.load(candidate)
            break
    return symbol, params, card


def load_symbol_params(symbol: str | Path, params: str | Path) -> tuple[Any, dict[str, Any]]:
    """Read an exported symbol and its params (``arg:``/``aux:`` prefixes merged)."""
    mx = import_mxnet()
    try:
        sym = mx.sym.load(str(symbol))
        loaded = mx.nd.load(str(params))
    except Exception as exc:  # MXNetError for malformed files
        raise ExportError(f"{symbol}: cannot load symbol/params ({exc})") from exc
    return sym, {k.split(":", 1)[-1]: v for k, v in loaded.items()}


def gluon_to_onnx(
    run_or_prefix: Any,
    path: str | Path,
    *,
    card: ModelCard | None = None,
    opset: int = 13,
    dynamic_batch: bool = False,
) -> Path:
    """Convert a Gluon run (or exported symbol/params, or a HybridBlock) to ONNX.

    ``card`` describes the model (classes, preprocessing); by default the run's
    ``card.json`` or the symbol's sidecar. The ONNX input is ``data`` (N x 3 x S x S, N
    dynamic if ``dynamic_batch``), the output ``logits``; the card (format ``onnx``) is in
    ``metadata_props[METADATA_KEY]``. Raises :class:`ExportError` on unsupported opsets or
    operators, and if ``onnx.checker`` rejects the result.
    """
    if int(opset) not in SUPPORTED_OPSETS:
        raise ExportError(
            f"opset {opset} is not supported by the Gluon exporter (MXNet 1.9.1 translates "
            f"opsets {', '.join(map(str, SUPPORTED_OPSETS))}); use --opset 13"
        )
    path = Path(path)
    tmp_dir = None
    try:
        if hasattr(run_or_prefix, "hybridize"):  # a live Gluon block
            if card is None:
                raise ExportError("gluon_to_onnx(net, ...) needs card= (classes, preprocessing)")
            tmp_dir = Path(tempfile.mkdtemp(prefix=".gluon-onnx-"))
            symbol, params = export_symbol(
                run_or_prefix, tmp_dir / "model", image_size=card.preprocess.image_size
            )
            found = None
        else:
            symbol, params, found = _resolve(run_or_prefix)
        card = card or found
        if card is None:
            raise ExportError(
                f"{symbol}: no model card found beside it; pass card= (classes, preprocessing)"
            )
        model = _convert(symbol, params, card, int(opset), bool(dynamic_batch))
        source_hash = card.source_sha256 or sha256_file(params)
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    out_card = card.replace(format="onnx", framework="gluon", source_sha256=source_hash)
    _set_metadata(model, out_card)
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx.checker.ValidationError and shape inference errors
        raise ExportError(f"{path}: the converted ONNX graph fails onnx.checker: {exc}") from exc
    atomic_write_bytes(path, model.SerializeToString())
    return path


def _convert(symbol: Path, params: Path, card: ModelCard, opset: int, dynamic: bool) -> Any:
    import_mxnet_onnx()  # installs the onnx.mapping shim before mx2onnx imports it
    import onnx
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph

    sym, weights = load_symbol_params(symbol, params)
    inputs = [n for n in sym.list_arguments() if n not in weights]
    if inputs != [INPUT_NAME]:
        raise ExportError(
            f"{symbol}: expected one input named {INPUT_NAME!r}, found {inputs} "
            "(export the Gluon net with net.export(), which names its input 'data')"
        )
    size = card.preprocess.image_size
    shape = (1, 3, size, size)
    try:
        with fast_onnx_initializers():
            graph = MXNetGraph().create_onnx_graph_proto(
                sym,
                weights,
                [shape],
                [onnx.TensorProto.FLOAT],
                opset_version=opset,
                dynamic=dynamic,
                dynamic_input_shapes=[(None, 3, size, size)] if dynamic else None,
            )
    except Exception as exc:  # unsupported operator, shape error
        raise ExportError(f"{symbol}: MXNet -> ONNX conversion failed: {exc}") from exc
    # Weights are initializers; as graph inputs they would block constant folding.
    initializers = {t.name for t in graph.initializer}
    keep = [i for i in graph.input if i.name not in initializers]
    del graph.input[:]
    graph.input.extend(keep)
    if len(graph.output) != 1:
        raise ExportError(f"{symbol}: expected one output, found {len(graph.output)}")
    _rename_output(graph, graph.output[0].name, OUTPUT_NAME)
    model = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", opset)],
        producer_name="caltech-edge (mxnet.onnx)",
    )
    model.ir_version = 8  # opset 12/13 runtimes (older ONNX Runtime/OpenVINO) read IR 8
    return model


def _rename_output(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    graph.output[0].name = new


def _set_metadata(model: Any, card: ModelCard) -> None:
    for i, prop in enumerate(model.metadata_props):
        if prop.key == METADATA_KEY:
            del model.metadata_props[i]
            break
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, card.to_json()


def export_run_symbol(run: Any, out_dir: str | Path) -> tuple[Path, Path]:
    """Copy a Gluon run's symbol/params into ``out_dir`` as ``model-*`` with a card sidecar."""
    symbol, params, card = _resolve(run)
    card = card_for(symbol, card)
    out_dir = Path(out_dir)
    out_symbol, out_params = symbol_params_paths(out_dir / "model")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_params, params.read_bytes())
    atomic_write_bytes(out_symbol, symbol.read_bytes())
    out_card = card.replace(
        format="mxnet", framework="gluon", source_sha256=card.source_sha256 or sha256_file(params)
    )
    out_card.save(sidecar_path(out_symbol))
    return out_symbol, out_params
