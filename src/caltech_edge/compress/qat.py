"""Quantization-aware training ("mixed mode training"): for when PTQ loses too much.

The model is fine-tuned with fake quantization in the forward pass (PyTorch FX QAT,
``prepare_qat_fx``) using exactly the scheme our ONNX Runtime INT8 uses: uint8
asymmetric per-tensor activations, int8 symmetric per-channel weights. BatchNorm is
folded into the convolutions first, so the weights that get quantized are the folded
ones the exported graph will hold.

Two exports (``mode``):

* ``"ptq"`` (default): fake quantization is switched off, the QAT-trained weights are
  exported to FP32 ONNX and quantized by :func:`~.onnx_int8.quantize_onnx` with the
  calibration set. The weights have learned to live on the int8 grid, and the graph
  gets ONNX Runtime's fast fused QLinearConv kernels.
* ``"qdq"``: the fake-quant graph itself is exported (QuantizeLinear/DequantizeLinear
  with the scales learned in training). Faithful to training, but ONNX Runtime fuses
  fewer nodes (biases stay float) so it runs slower; see docs/compression.md.
"""

from __future__ import annotations

import copy
import io
import logging
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..card import ModelCard
from ..errors import ConfigError, ExportError
from ._artifact import save_onnx_with_card

log = logging.getLogger(__name__)

MODES = ("ptq", "qdq")


def qat_qconfig_mapping():
    """uint8 affine activations, int8 symmetric per-channel weights (ORT's fast scheme)."""
    from torch.ao.quantization import (
        FakeQuantize,
        MovingAverageMinMaxObserver,
        MovingAveragePerChannelMinMaxObserver,
        QConfig,
        QConfigMapping,
    )

    act = FakeQuantize.with_args(
        observer=MovingAverageMinMaxObserver,
        quant_min=0,
        quant_max=255,
        dtype=torch.quint8,
        qscheme=torch.per_tensor_affine,
    )
    weight = FakeQuantize.with_args(
        observer=MovingAveragePerChannelMinMaxObserver,
        quant_min=-128,
        quant_max=127,
        dtype=torch.qint8,
        qscheme=torch.per_channel_symmetric,
        ch_axis=0,
    )
    return QConfigMapping().set_global(QConfig(activation=act, weight=weight))


def prepare_qat(model: nn.Module, image_size: int) -> nn.Module:
    """BN-folded copy of ``model`` with fake quantization inserted (train mode)."""
    from torch.ao.quantization.quantize_fx import prepare_qat_fx
    from torch.fx.experimental.optimization import fuse

    folded = fuse(copy.deepcopy(model).eval())
    example = (torch.zeros(1, 3, image_size, image_size),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare_qat_fx(folded.train(), qat_qconfig_mapping(), example)


def finetune_qat(
    model: nn.Module,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    epochs: int = 1,
    learning_rate: float = 1e-4,
    freeze_observers_after: int | None = None,
) -> nn.Module:
    """A small SGD loop over re-iterable (NCHW, labels) batches; observers freeze late.

    Observers are frozen for the last epoch (default) so the quantization ranges settle
    and the weights adapt to them, as in the PyTorch QAT recipe.
    """
    if epochs < 1:
        raise ConfigError(f"QAT epochs must be >= 1, got {epochs}")
    freeze_at = epochs - 1 if freeze_observers_after is None else freeze_observers_after
    opt = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9)
    model.train()
    for epoch in range(epochs):
        if epoch >= freeze_at and epoch > 0:
            model.apply(torch.ao.quantization.disable_observer)
        total = correct = 0
        for images, labels in batches:
            x = torch.from_numpy(np.ascontiguousarray(images, np.float32))
            y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
            opt.zero_grad()
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            loss.backward()
            opt.step()
            total += len(y)
            correct += int((logits.argmax(1) == y).sum())
        log.info("QAT epoch %d: train top-1 %.3f", epoch + 1, correct / max(1, total))
    model.apply(torch.ao.quantization.disable_observer)
    return model.eval()


def _scalarize_qparams(model) -> None:
    """Per-tensor scales/zero-points exported as shape [1] -> scalars (ORT requires it)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for name in node.input[1:3]:
            tensor = inits.get(name)
            if tensor is None and name in consts:
                tensor = consts[name].attribute[0].t
            if tensor is not None and list(tensor.dims) == [1]:
                arr = numpy_helper.to_array(tensor).reshape(())
                tensor.CopyFrom(numpy_helper.from_array(arr, tensor.name))


def export_qat(
    model: nn.Module,
    card: ModelCard,
    out_path: str | Path,
    *,
    mode: str = "ptq",
    calibration=None,
) -> Path:
    """Write the QAT model as an INT8 ONNX (see the module docstring for ``mode``)."""
    import onnx

    from ..export.onnx import export_onnx

    if mode not in MODES:
        raise ConfigError(f"QAT export mode must be one of {', '.join(MODES)}; got {mode!r}")
    out_path = Path(out_path)
    qat_info = {"qat": True, "qat_mode": mode}
    if mode == "ptq":
        if calibration is None:
            raise ConfigError("QAT mode 'ptq' needs calibration= (a CalibrationReader)")
        from .onnx_int8 import quantize_onnx

        plain = copy.deepcopy(model)
        plain.apply(torch.ao.quantization.disable_fake_quant)
        with tempfile.TemporaryDirectory(prefix="ce-qat-") as tmp:
            fp32 = export_onnx(
                plain, card.replace(extra={**card.extra, **qat_info}), Path(tmp) / "m.onnx"
            )
            return quantize_onnx(fp32, out_path, calibration=calibration)
    buf = io.BytesIO()
    dummy = torch.zeros(card.input_shape)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.eval(),
                (dummy,),
                buf,
                input_names=[card.input_name or "data"],
                output_names=["logits"],
                opset_version=13,
                dynamo=False,
            )
    except Exception as exc:
        raise ExportError(f"{out_path}: QAT ONNX export failed ({exc})") from exc
    proto = onnx.load_from_string(buf.getvalue())
    _scalarize_qparams(proto)
    new_card = card.replace(
        format="onnx",
        precision="int8",
        input_name=card.input_name or "data",
        extra={**card.extra, **qat_info},
    )
    return save_onnx_with_card(proto, out_path, new_card)


def qat(
    model: nn.Module,
    card: ModelCard,
    *,
    train_batches: Iterable[tuple[np.ndarray, np.ndarray]],
    out: str | Path,
    epochs: int = 1,
    learning_rate: float = 1e-4,
    mode: str = "ptq",
    calibration=None,
) -> Path:
    """Fine-tune ``model`` with fake quantization and write ``out`` (an INT8 ONNX file).

    ``train_batches``: re-iterable (NCHW float32, labels) batches of the training split,
    e.g. ``list(iter_batches(ds, split.train, spec, batch_size=16, shuffle=True))``.
    """
    if mode not in MODES:
        raise ConfigError(f"QAT export mode must be one of {', '.join(MODES)}; got {mode!r}")
    prepared = prepare_qat(model, card.preprocess.image_size)
    finetune_qat(prepared, train_batches, epochs=epochs, learning_rate=learning_rate)
    return export_qat(prepared, card, out, mode=mode, calibration=calibration)
