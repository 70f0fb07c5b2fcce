"""Bias correction of the symmetric (TensorRT) QDQ graph (compress/bias_correction.py).

On the tiny trained ResNet: after correction every corrected layer's per-channel mean
output on the calibration images is closer to FP32's than before, the classifier's bias
is untouched, and the producer records the step in the card.
"""

from __future__ import annotations

import numpy as np


def _bias(model, node):
    from onnx import numpy_helper

    init = next(i for i in model.graph.initializer if i.name == node.input[2])
    return numpy_helper.to_array(init).copy()


def test_corrected_layers_keep_fp32_means_and_the_classifier_is_untouched(
    tiny_exports, tiny_calibration, tmp_path
):
    import onnx

    from caltech_edge.compress._artifact import source_card
    from caltech_edge.compress.bias_correction import (
        _channel_means,
        correct_biases,
        correctable_layers,
    )
    from caltech_edge.compress.onnx_int8 import _preprocess, classifier_node
    from caltech_edge.compress.sensitivity import calibration_images
    from caltech_edge.export.tensorrt import quantize_trt_onnx

    plain = quantize_trt_onnx(
        tiny_exports["onnx"], tmp_path / "plain" / "model.onnx",
        calibration=tiny_calibration, float_logits=True,
    )  # fmt: skip
    _preprocess(tiny_exports["onnx"], tmp_path / "pre.onnx")
    fp32, qdq = onnx.load(str(tmp_path / "pre.onnx")), onnx.load(str(plain))
    head = classifier_node(fp32)
    layers = correctable_layers(qdq, fp32, exclude=[head])
    assert len(layers) >= 5 and head not in [n.name for n in layers]
    images = calibration_images(tiny_calibration, limit=16)
    outputs = [n.output[0] for n in layers]
    target = _channel_means(fp32, outputs, images)

    def shifts(model):
        return [
            np.abs(g - t).mean() for g, t in zip(_channel_means(model, outputs, images), target)
        ]

    before = shifts(qdq)
    head_node = next(n for n in qdq.graph.node if n.name == head)
    head_bias = _bias(qdq, head_node)
    assert correct_biases(qdq, fp32, images, exclude=[head]) == [n.name for n in layers]
    after = shifts(qdq)
    assert sum(after) < 0.5 * sum(before)
    assert all(a <= b + 1e-6 for a, b in zip(after, before))
    np.testing.assert_array_equal(_bias(qdq, head_node), head_bias)

    corrected = quantize_trt_onnx(
        tiny_exports["onnx"], tmp_path / "bc" / "model.onnx",
        calibration=tiny_calibration, float_logits=True, bias_correction=True,
    )  # fmt: skip
    assert source_card(corrected).extra["quantization"]["bias_correction"] is True
    assert source_card(plain).extra["quantization"]["bias_correction"] is False
    model = onnx.load(str(corrected))
    first = next(n for n in model.graph.node if n.name == layers[0].name)
    assert not np.allclose(_bias(model, first), _bias(onnx.load(str(plain)), layers[0]))
