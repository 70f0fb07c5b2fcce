"""Quantization-aware training: fake-quant fine-tuning exported as an INT8 ONNX model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from caltech_edge.compress.qat import export_qat, finetune_qat, prepare_qat
from caltech_edge.errors import ConfigError


@pytest.fixture(scope="module")
def qat_model(tiny_model, synthetic_root, tiny_run):
    from caltech_edge.data.datasets import open_dataset
    from caltech_edge.data.loader import iter_batches
    from caltech_edge.data.splits import Split

    model, card = tiny_model
    ds = open_dataset(synthetic_root)
    train = Split.load(tiny_run.split, dataset=ds).train
    batches = list(iter_batches(ds, train, card.preprocess, batch_size=20, shuffle=True))
    prepared = prepare_qat(model, card.preprocess.image_size)
    finetune_qat(prepared, batches, epochs=1, learning_rate=1e-3)
    return prepared, card


@pytest.mark.parametrize("mode", ["qdq", "ptq"])
def test_qat_exports_int8_onnx_matching_the_fake_quant_model(
    mode, qat_model, tiny_calibration, tiny_test_images, tiny_model, tmp_path
):
    prepared, card = qat_model
    path = export_qat(
        prepared, card, tmp_path / "qat.onnx", mode=mode, calibration=tiny_calibration
    )
    graph = onnx.load(str(path))
    ops = Counter(n.op_type for n in graph.graph.node)
    assert ops["QuantizeLinear"] >= 10 and ops["DequantizeLinear"] >= 10
    assert "BatchNormalization" not in ops  # folded before fake quantization
    images, labels = tiny_test_images
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = np.concatenate(
        [sess.run(None, {"data": images[i : i + 1]})[0] for i in range(len(images))]
    )
    with torch.no_grad():
        ref = prepared(torch.from_numpy(images)).numpy()
        fp32 = tiny_model[0](torch.from_numpy(images)).numpy()
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.9
    assert (out.argmax(1) == labels).mean() >= (fp32.argmax(1) == labels).mean() - 0.15
    meta = {p.key: p.value for p in graph.metadata_props}
    assert (
        '"precision": "int8"' in meta["caltech_edge.card"]
        and '"qat": true' in meta["caltech_edge.card"]
    )


def test_qat_refuses_unknown_mode_and_missing_calibration(qat_model, tmp_path):
    prepared, card = qat_model
    with pytest.raises(ConfigError):
        export_qat(prepared, card, tmp_path / "x.onnx", mode="int4")
    with pytest.raises(ConfigError, match="calibration"):
        export_qat(prepared, card, tmp_path / "x.onnx", mode="ptq")
