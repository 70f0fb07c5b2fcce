"""MXNet backend: ``model-symbol.json`` + ``model-0000.params`` in an ``mx.mod.Module``.

This is how the AWS DeepLens MXNet runtime (and ``mo.optimize``) consumed a model:
``mx.model.load_checkpoint(prefix, epoch)`` then a Module bound for inference. MXNet has no
metadata slot, so the card comes from a sidecar JSON. Python 3.8-compatible; ``mxnet`` is
imported only when a model is opened, through :func:`import_mxnet`.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Optional, Tuple, Union

import numpy as np

from ..._registry import require
from ...card import ModelCard
from ...errors import BackendError, CaltechEdgeError, MissingDependencyError
from ..base import check_batch, own_precision_only
from ._card import sidecar_card

_PARAMS_RE = re.compile(r"^(?P<prefix>.+)-(?P<epoch>\d{4})\.params$")


def import_mxnet() -> Any:
    """Import MXNet 1.9.1, which needs two workarounds on a modern stack.

    * numpy >= 1.24 removed ``np.bool`` & co. that MXNet still uses; the aliases are
      restored (only where missing) right before the import, in this one place.
    * importing MXNet drops PyTorch to one intra-op thread (ENVIRONMENT.md); when torch is
      already loaded its thread count is put back afterwards.
    """
    if sys.modules.get("mxnet") is not None:
        return sys.modules["mxnet"]
    for alias, value in (
        ("bool", bool),
        ("object", object),
        ("int", int),
        ("float", float),
        ("complex", complex),
        ("str", str),
    ):
        if alias not in np.__dict__:
            setattr(np, alias, value)
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    try:
        mx = require("mxnet", "mxnet", purpose="the mxnet backend")
    except MissingDependencyError as exc:
        # there is no "mxnet" extra any more: say where MXNet lives instead
        exc.msg = (  # ImportError prints .msg
            "'mxnet' is not installed in this environment. The core runs MXNet work in its "
            "isolated toolchain (caltech-edge toolchain install mxnet; use the CLI or "
            "caltech_edge.train/export/open_runtime); on a device: "
            "pip install mxnet==1.9.1 'numpy<1.24'"
        )
        exc.args = (exc.msg,)
        raise
    if torch is not None and threads:
        torch.set_num_threads(threads)
    return mx


def resolve_checkpoint(path: Union[str, Path]) -> Tuple[str, int, Path]:
    """``(prefix, epoch, symbol_path)`` for a symbol file, a params file or a folder of both."""
    path = Path(path)
    if path.is_dir():
        symbols = sorted(path.glob("*-symbol.json"))
        if len(symbols) != 1:
            raise BackendError(
                "{}: expected exactly one *-symbol.json in this folder, found {}".format(
                    path, [s.name for s in symbols] or "none"
                )
            )
        path = symbols[0]
    name = path.name
    if name.endswith("-symbol.json"):
        prefix = str(path)[: -len("-symbol.json")]
        params = sorted(
            Path(prefix).parent.glob(Path(prefix).name + "-[0-9][0-9][0-9][0-9].params")
        )
        if not params:
            raise BackendError(
                "{}: no matching {}-NNNN.params file beside it".format(path, Path(prefix).name)
            )
        epoch = int(_PARAMS_RE.match(params[-1].name).group("epoch"))
        return prefix, epoch, path
    match = _PARAMS_RE.match(name)
    if match:
        prefix = str(path.parent / match.group("prefix"))
        symbol = Path(prefix + "-symbol.json")
        if not symbol.is_file():
            raise BackendError("{}: no matching symbol file {}".format(path, symbol.name))
        return prefix, int(match.group("epoch")), symbol
    raise BackendError(
        "{}: not an MXNet checkpoint; expected PREFIX-symbol.json + PREFIX-0000.params "
        "or the folder holding them".format(path)
    )


class MxnetRuntime:
    """An MXNet symbol/params pair bound for inference on the CPU, as DeepLens loaded it.

    The Module is re-bound (``reshape``) when the batch size changes. ``threads`` sets
    ``OMP_NUM_THREADS`` only if MXNet is not imported yet (MXNet reads it at import).
    """

    name = "mxnet"

    def __init__(
        self,
        path: Union[str, Path],
        *,
        card: Optional[ModelCard] = None,
        precision_hint: Optional[str] = None,
        threads: Optional[int] = None,
    ) -> None:
        own_precision_only(path, precision_hint, "the mxnet backend runs FP32 only")
        if threads and "mxnet" not in sys.modules:
            os.environ.setdefault("OMP_NUM_THREADS", str(int(threads)))
        mx = import_mxnet()
        self._mx = mx
        self.prefix, self.epoch, self.path = resolve_checkpoint(path)
        self.card = card if card is not None else sidecar_card(self.path)
        self.input_name = self.card.input_name or "data"
        try:
            symbol, arg_params, aux_params = mx.model.load_checkpoint(self.prefix, self.epoch)
            if self.input_name not in symbol.list_arguments():
                raise BackendError(
                    "{}: the symbol has no input {!r} (its free inputs: {})".format(
                        self.path,
                        self.input_name,
                        [a for a in symbol.list_arguments() if a not in arg_params],
                    )
                )
            self.module = mx.mod.Module(
                symbol=symbol, data_names=[self.input_name], label_names=None, context=mx.cpu()
            )
            self.module.bind(
                for_training=False, data_shapes=[(self.input_name, self.card.input_shape)]
            )
            self.module.set_params(arg_params, aux_params, allow_missing=False)
        except CaltechEdgeError:
            raise
        except Exception as exc:
            raise BackendError(
                "{}: MXNet cannot load this checkpoint ({}: {})".format(
                    self.path, type(exc).__name__, exc
                )
            ) from exc
        self._batch = self.card.input_shape[0]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.card, str(self.path))
        mx = self._mx
        if batch.shape[0] != self._batch:
            self.module.reshape(data_shapes=[(self.input_name, batch.shape)])
            self._batch = batch.shape[0]
        self.module.forward(mx.io.DataBatch([mx.nd.array(batch)]), is_train=False)
        return self.module.get_outputs()[0].asnumpy().astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return "MxnetRuntime({!r})".format(self.prefix)
