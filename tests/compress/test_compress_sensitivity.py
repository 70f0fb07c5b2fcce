"""Label-free per-layer sensitivity (compress/sensitivity.py) and the recipes built on it.

The ranking must find a layer we damaged on purpose; putting layers back in float must
really remove their Q/DQ and bring the logits closer to FP32; the OpenVINO recipe must
run NNCF's accuracy control against FP32's own top-1 (no labels given).
"""

from __future__ import annotations

import numpy as np
import pytest


def test_rank_layers_orders_by_how_much_float_helps():
    from caltech_edge.compress.sensitivity import rank_layers

    rng = np.random.default_rng(0)
    reference = rng.standard_normal((16, 5))
    damage = {"a": 0.05, "b": 1.0, "c": 0.3}
    noise = {k: v * rng.standard_normal((16, 5)) for k, v in damage.items()}
    quantized = reference + sum(noise.values())
    ranking = rank_layers(list(damage), reference, quantized, lambda k: quantized - noise[k])
    assert [name for name, _ in ranking] == ["b", "c", "a"]
    assert all(gain > 0 for _, gain in ranking)


@pytest.fixture(scope="module")
def qdq(tiny_exports, tiny_calibration, tmp_path_factory):
    import onnx

    from caltech_edge.compress.onnx_int8 import _preprocess, quantize_onnx

    work = tmp_path_factory.mktemp("sens")
    q = quantize_onnx(tiny_exports["onnx"], work / "q.onnx", calibration=tiny_calibration)
    _preprocess(tiny_exports["onnx"], work / "pre.onnx")
    return onnx.load(str(q)), onnx.load(str(work / "pre.onnx"))


def _images(tiny_calibration):
    from caltech_edge.compress.sensitivity import calibration_images

    return calibration_images(tiny_calibration, limit=16)


def test_float_layers_matches_onnx_runtimes_own_exclusion(
    qdq, tiny_exports, tiny_calibration, tmp_path
):
    """Surgery without re-calibration gives exactly what quantize_static's exclusion does."""
    import onnx

    from caltech_edge.compress.onnx_int8 import first_conv_node, quantize_onnx
    from caltech_edge.compress.sensitivity import float_layers, onnx_predict, quantized_nodes

    model, fp32 = qdq
    nodes = quantized_nodes(model)
    assert len(nodes) >= 10  # ResNet-18: every conv and the classifier
    assert quantized_nodes(float_layers(model, fp32, nodes)) == []
    stem = first_conv_node(fp32)
    restored = float_layers(model, fp32, [stem])
    assert quantized_nodes(restored) == [n for n in nodes if n != stem]
    excluded = quantize_onnx(
        tiny_exports["onnx"], tmp_path / "ex.onnx", calibration=tiny_calibration,
        exclude_first=True,
    )  # fmt: skip
    x = _images(tiny_calibration)
    ours, theirs = onnx_predict(restored)(x), onnx_predict(onnx.load(str(excluded)))(x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    assert not np.allclose(ours, onnx_predict(model)(x), atol=1e-5)  # it did change


def test_sensitivity_finds_the_layer_we_damaged(qdq, tiny_calibration):
    from onnx import numpy_helper

    from caltech_edge.compress.sensitivity import keep_sensitive_onnx, quantized_nodes

    model, fp32 = qdq
    victim = quantized_nodes(model)[3]
    node = next(n for n in model.graph.node if n.name == victim)
    producers = {o: n for n in model.graph.node for o in n.output}
    scale_name = producers[node.input[1]].input[1]  # the weight DequantizeLinear's scale
    init = next(i for i in model.graph.initializer if i.name == scale_name)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 4.0, scale_name))
    kept, ranking = keep_sensitive_onnx(model, fp32, _images(tiny_calibration), 1)
    assert ranking[0][0] == victim and ranking[0][1] > ranking[1][1]
    assert victim not in quantized_nodes(kept)
    assert len(quantized_nodes(kept)) == len(quantized_nodes(model)) - 1


def test_onnx_recipe_records_the_layers_it_kept_in_float(tiny_exports, tiny_calibration, tmp_path):
    from caltech_edge.compress._artifact import source_card
    from caltech_edge.compress.quantize import quantize

    out = quantize(
        tiny_exports["onnx"], out=tmp_path, backend="onnxruntime",
        calibration=tiny_calibration, recipe="minmax-3-sensitive-float",
    )  # fmt: skip
    quant = source_card(out).extra["quantization"]
    assert quant["recipe"] == "minmax-3-sensitive-float" and quant["keep_sensitive"] == 3
    assert 1 <= len(quant["excluded_nodes"]) <= 3


def test_openvino_accuracy_control_uses_fp32_top1_as_labels(
    tiny_exports, tiny_calibration, tmp_path
):
    from caltech_edge.compress._artifact import source_card
    from caltech_edge.compress.openvino_int8 import quantize_openvino

    out = quantize_openvino(
        tiny_exports["openvino"], tmp_path / "model.xml", calibration=tiny_calibration,
        preset="mixed", fp32_max_drop=0.01,
    )  # fmt: skip
    quant = source_card(out).extra["quantization"]
    assert quant["fp32_labels"] is True and quant["max_drop"] == 0.01
    assert isinstance(quant["float_layers"], list)


def test_openvino_card_lists_the_layers_left_in_float(tiny_exports, tiny_calibration, tmp_path):
    from caltech_edge.compress._artifact import source_card
    from caltech_edge.compress.openvino_int8 import quantize_openvino

    plain = quantize_openvino(
        tiny_exports["openvino"], tmp_path / "a" / "model.xml", calibration=tiny_calibration
    )
    stem = quantize_openvino(
        tiny_exports["openvino"], tmp_path / "b" / "model.xml", calibration=tiny_calibration,
        exclude_first=True,
    )  # fmt: skip
    assert source_card(plain).extra["quantization"]["float_layers"] == []
    quant = source_card(stem).extra["quantization"]
    assert quant["float_layers"] == quant["excluded_nodes"]
