"""INT8 (ONNX Runtime QDQ, OpenVINO NNCF), FP16 IR and dynamic quantization, judged by
top-1 agreement with the FP32 source on held-out images."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from caltech_edge.card import sidecar_path
from caltech_edge.compress.onnx_int8 import classifier_node, quantize_onnx, quantize_onnx_dynamic
from caltech_edge.compress.openvino_int8 import fp16_ir, quantize_openvino
from caltech_edge.compress.quantize import quantize
from caltech_edge.errors import ConfigError, UnknownNameError
from caltech_edge.export.verify import verify_artifact

MIN_AGREEMENT = 0.9  # INT8 vs FP32 top-1 agreement on the synthetic test images


def _ort_logits(path, images):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate(
        [sess.run(None, {name: images[i : i + 1]})[0] for i in range(len(images))]
    )


def _ov_logits(path, images):
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU")
    return np.concatenate([compiled(images[i : i + 1])[0] for i in range(len(images))])


@pytest.fixture(scope="module")
def ort_int8(tiny_exports, tiny_calibration, tmp_path_factory):
    out = tmp_path_factory.mktemp("ort-int8") / "model.onnx"
    return quantize_onnx(tiny_exports["onnx"], out, calibration=tiny_calibration)


def test_ort_int8_is_qdq_with_uint8_activations_and_per_channel_int8_weights(ort_int8):
    model = onnx.load(str(ort_int8))
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["QuantizeLinear"] > 10 and ops["DequantizeLinear"] > 10
    inits = {i.name: i for i in model.graph.initializer}
    q_zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert q_zero_points and all(z.data_type == onnx.TensorProto.UINT8 for z in q_zero_points)
    weight_dq = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in inits
        and inits[n.input[0]].data_type == onnx.TensorProto.INT8
    ]
    assert weight_dq, "weights must be stored as int8"
    per_channel = [n for n in weight_dq if numpy_helper.to_array(inits[n.input[1]]).size > 1]
    assert len(per_channel) >= 10  # every conv has one scale per output channel


def test_ort_int8_agrees_with_fp32_and_carries_its_card(ort_int8, tiny_exports, tiny_test_images):
    images, labels = tiny_test_images
    ref, out = _ort_logits(tiny_exports["onnx"], images), _ort_logits(ort_int8, images)
    assert (ref.argmax(1) == out.argmax(1)).mean() >= MIN_AGREEMENT
    assert (out.argmax(1) == labels).mean() >= (ref.argmax(1) == labels).mean() - 0.1
    card = json.loads(sidecar_path(ort_int8).read_text())
    assert card["precision"] == "int8" and card["format"] == "onnx"
    assert len(card["extra"]["parent_sha256"]) == 64
    assert card["extra"]["quantization"]["activation_type"] == "uint8"
    report = verify_artifact(ort_int8, against=tiny_exports["onnx"], images=images)
    assert report.passed and report.precision == "int8"


def test_ort_exclude_classifier_leaves_the_final_gemm_in_float(
    tiny_exports, tiny_calibration, tmp_path
):
    out = quantize_onnx(
        tiny_exports["onnx"],
        tmp_path / "m.onnx",
        calibration=tiny_calibration,
        exclude_classifier=True,
        method="percentile",
    )
    model = onnx.load(str(out))
    producers = {o: n for n in model.graph.node for o in n.output}
    gemm = [n for n in model.graph.node if n.op_type == "Gemm"]
    assert len(gemm) == 1
    weight = gemm[0].input[1]
    assert weight not in producers or producers[weight].op_type != "DequantizeLinear"
    assert classifier_node(onnx.load(str(tiny_exports["onnx"]))) == gemm[0].name


def test_default_settings_do_not_collapse_where_qoperator_uint8_weights_may(
    tiny_exports, tiny_calibration, tiny_test_images, ort_int8, tmp_path
):
    """microsoft/onnxruntime-inference-examples#319: QOperator with uint8 per-tensor
    weights can collapse accuracy. Our default (QDQ, int8 per-channel) must stay close
    to FP32 and at least as close as that setting."""
    images, _ = tiny_test_images
    bad = quantize_onnx(
        tiny_exports["onnx"],
        tmp_path / "bad.onnx",
        calibration=tiny_calibration,
        quant_format="qoperator",
        weight_type="uint8",
        per_channel=False,
    )
    ref = _ort_logits(tiny_exports["onnx"], images)
    ours, theirs = _ort_logits(ort_int8, images), _ort_logits(bad, images)

    def cos(a):
        return float(
            np.mean(np.sum(a * ref, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(ref, axis=1)))
        )

    assert (ours.argmax(1) == ref.argmax(1)).mean() >= MIN_AGREEMENT
    assert cos(ours) >= cos(theirs) - 1e-3
    assert cos(ours) > 0.98


def test_openvino_int8_loads_in_plain_openvino_and_agrees(
    tiny_exports, tiny_calibration, tiny_test_images, tmp_path
):
    import openvino as ov

    images, _ = tiny_test_images
    xml = quantize(
        tiny_exports["openvino"],
        out=tmp_path,
        backend="openvino",
        calibration=tiny_calibration,
        exclude_classifier=True,
    )
    model = ov.Core().read_model(str(xml))
    types = Counter(op.get_type_name() for op in model.get_ops())
    assert types["FakeQuantize"] > 10
    # the classifier MatMul is in the ignored scope: no FakeQuantize on its weights
    matmul = next(op for op in model.get_ops() if op.get_type_name() == "MatMul")
    assert all(matmul.input_value(i).get_node().get_type_name() != "FakeQuantize" for i in range(2))
    ref, out = _ov_logits(tiny_exports["openvino"], images), _ov_logits(xml, images)
    assert (ref.argmax(1) == out.argmax(1)).mean() >= MIN_AGREEMENT
    card = json.loads(sidecar_path(xml).read_text())
    assert card["precision"] == "int8" and card["format"] == "openvino"
    assert model.has_rt_info("caltech_edge.card")


def test_openvino_accuracy_control_needs_and_uses_validation(
    tiny_exports, tiny_calibration, synthetic_root, tiny_run, tmp_path
):
    from caltech_edge.data.calibration import validation_batches

    with pytest.raises(ConfigError, match="validation"):
        quantize_openvino(
            tiny_exports["openvino"],
            tmp_path / "x.xml",
            calibration=tiny_calibration,
            max_drop=0.01,
        )
    val = validation_batches(
        synthetic_root, spec=tiny_run.load_card().preprocess, split=tiny_run.split, size=24
    )
    xml = quantize_openvino(
        tiny_exports["openvino"],
        tmp_path / "ac.xml",
        calibration=tiny_calibration,
        max_drop=0.05,
        validation=val,
    )
    card = json.loads(sidecar_path(xml).read_text())
    assert card["extra"]["quantization"]["max_drop"] == 0.05
    assert xml.with_suffix(".bin").is_file()


def test_fp16_ir_halves_the_weights(tiny_exports, tiny_test_images, tmp_path):
    images, _ = tiny_test_images
    xml = fp16_ir(tiny_exports["onnx"], tmp_path / "fp16.xml")
    fp32_bin = tiny_exports["openvino"].with_suffix(".bin").stat().st_size
    assert xml.with_suffix(".bin").stat().st_size < 0.6 * fp32_bin
    ref, out = _ov_logits(tiny_exports["openvino"], images), _ov_logits(xml, images)
    assert (ref.argmax(1) == out.argmax(1)).mean() >= 0.95
    from_ir = fp16_ir(tiny_exports["openvino"], tmp_path / "ir" / "fp16.xml")  # IR -> IR
    assert from_ir.with_suffix(".bin").stat().st_size < 0.6 * fp32_bin
    assert json.loads(sidecar_path(from_ir).read_text())["precision"] == "fp16"


def test_dynamic_quantization_touches_only_the_classifier_of_a_convnet(tiny_exports, tmp_path):
    out = quantize_onnx_dynamic(tiny_exports["onnx"], tmp_path / "dyn.onnx")
    ops = Counter(n.op_type for n in onnx.load(str(out)).graph.node)
    assert ops["DynamicQuantizeLinear"] >= 1 and ops["Conv"] >= 10 and "ConvInteger" not in ops


def test_quantize_rejects_bad_names_and_options(tiny_exports, tiny_calibration, tmp_path):
    with pytest.raises(UnknownNameError, match="openvino"):
        quantize(
            tiny_exports["onnx"], out=tmp_path, backend="openvin", calibration=tiny_calibration
        )
    with pytest.raises(ConfigError, match="max_drop"):
        quantize(
            tiny_exports["onnx"],
            out=tmp_path,
            backend="onnxruntime",
            calibration=tiny_calibration,
            max_drop=0.01,
        )
    with pytest.raises(ConfigError, match="method"):
        quantize_onnx(
            tiny_exports["onnx"], tmp_path / "m.onnx", calibration=tiny_calibration, method="kl"
        )
