"""Float logits (compress/float_logits.py): no INT8 rounding after the last reducing op.

On real quantized graphs of the tiny ResNet-18: the pairs after the classifier go, nothing
before it changes, output names stay, and the logits come closer to FP32. The recipes
that use it record it in the card.
"""

from __future__ import annotations

import numpy as np
import pytest


def _qdq_after_last_reducer(model) -> list[str]:
    from caltech_edge.compress.float_logits import ONNX_REDUCERS

    nodes = list(model.graph.node)
    last = max(i for i, n in enumerate(nodes) if n.op_type in ONNX_REDUCERS)
    return [n.op_type for n in nodes[last + 1 :] if n.op_type.endswith("QuantizeLinear")]


def onnx_predict_all(model, images):
    """Every graph output of ``model`` for ``images``, one image at a time."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    runs = [session.run(None, {name: images[i : i + 1]}) for i in range(len(images))]
    return [np.concatenate([r[k] for r in runs]) for k in range(len(runs[0]))]


def test_onnx_float_logits_removes_only_the_tail_and_moves_logits_toward_fp32(
    tiny_exports, tiny_calibration, tmp_path
):
    import onnx

    from caltech_edge.compress.float_logits import onnx_float_logits
    from caltech_edge.compress.onnx_int8 import quantize_onnx
    from caltech_edge.compress.sensitivity import calibration_images, onnx_predict

    q = onnx.load(str(quantize_onnx(tiny_exports["onnx"], tmp_path / "q.onnx",
                                    calibration=tiny_calibration, method="minmax")))  # fmt: skip
    assert _qdq_after_last_reducer(q)  # the classifier's output is rounded to uint8
    edited = onnx.ModelProto()
    edited.CopyFrom(q)
    removed = onnx_float_logits(edited)
    assert removed >= 1 and _qdq_after_last_reducer(edited) == []
    weights = lambda m: sorted(n.name for n in m.graph.node if n.op_type == "Conv")  # noqa: E731
    quantized = lambda m: sum(n.op_type == "QuantizeLinear" for n in m.graph.node)  # noqa: E731
    assert weights(edited) == weights(q) and quantized(edited) == quantized(q) - removed
    assert [o.name for o in edited.graph.output] == [o.name for o in q.graph.output]
    onnx.checker.check_model(edited)
    # The edited graph returns exactly the classifier's unrounded output: expose that tensor
    # in the original graph and compare; the original's output is it rounded to the grid.
    tail_q = next(n for n in q.graph.node if n.op_type == "QuantizeLinear"
                  and n.input[0] not in {i.name for i in q.graph.initializer}
                  and n.name not in {m.name for m in edited.graph.node})  # fmt: skip
    probe = onnx.ModelProto()
    probe.CopyFrom(q)
    probe.graph.output.append(onnx.helper.make_tensor_value_info(tail_q.input[0], 1, None))
    images = calibration_images(tiny_calibration, limit=16)
    rounded, unrounded = onnx_predict_all(probe, images)
    floated = onnx_predict(edited)(images)
    np.testing.assert_allclose(floated, unrounded, rtol=1e-5, atol=1e-5)
    assert np.abs(rounded - unrounded).max() > 1e-4  # the rounding that was removed
    assert onnx_float_logits(edited) == 0  # idempotent


def test_onnx_recipes_record_float_logits(tiny_exports, tiny_calibration, tmp_path):
    from caltech_edge.compress._artifact import source_card
    from caltech_edge.compress.onnx_int8 import RECIPES
    from caltech_edge.export.tensorrt import INT8_RECIPES, quantize_trt_onnx

    assert RECIPES[0].options.get("float_logits") is True  # the default search starts there
    assert all(opts.get("float_logits") for _, opts in INT8_RECIPES)
    out = quantize_trt_onnx(
        tiny_exports["onnx"], tmp_path / "trt" / "model.onnx", calibration=tiny_calibration,
        float_logits=True, keep_sensitive=2,
    )  # fmt: skip
    quant = source_card(out).extra["quantization"]
    assert quant["logits"] == "float" and len(quant["excluded_nodes"]) == 2
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(out))
    assert _qdq_after_last_reducer(model) == []
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node
                   if n.op_type == "QuantizeLinear" and len(n.input) > 2]  # fmt: skip
    assert zero_points and all(int(np.abs(z).max()) == 0 for z in zero_points)  # symmetric


@pytest.fixture(scope="module")
def converted(tiny_model, tiny_calibration):
    """The tiny ResNet-18 through PT2E with ExecuTorch's XNNPACK quantizer (not lowered)."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    from caltech_edge.compress.sensitivity import calibration_images
    from caltech_edge.data.calibration import CalibrationReader
    from caltech_edge.export.pt2e import quantize_pt2e

    model, card = tiny_model
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config())
    sample = torch.zeros(card.input_shape)
    few = CalibrationReader.from_arrays(list(calibration_images(tiny_calibration, limit=12)))

    def make(float_logits: bool):
        return quantize_pt2e(model, sample, quantizer, few, lambda x: x,
                             float_logits=float_logits)  # fmt: skip

    return make


def _pairs_after_last_reducer(gm) -> int:
    from caltech_edge.compress.float_logits import PT2E_REDUCERS

    nodes = list(gm.graph.nodes)
    last = max(i for i, n in enumerate(nodes) if str(n.target) in PT2E_REDUCERS)
    return sum("quantize_per_tensor" in str(n.target) for n in nodes[last + 1 :])


def test_pt2e_float_logits_leaves_the_classifier_output_in_float(converted, tiny_calibration):
    import torch

    from caltech_edge.compress.sensitivity import calibration_images

    make = converted
    plain, floated = make(False), make(True)
    assert _pairs_after_last_reducer(plain) > 0 and _pairs_after_last_reducer(floated) == 0
    count = lambda gm: sum("quantize" in str(n.target) for n in gm.graph.nodes)  # noqa: E731
    assert count(floated) < count(plain)  # only the tail changed: the convs stay quantized
    assert count(floated) > 0.8 * count(plain)
    images = calibration_images(tiny_calibration, limit=16)

    def run(m):
        with torch.no_grad():
            return np.concatenate([m(torch.from_numpy(images[i : i + 1])).numpy()
                                   for i in range(len(images))])  # fmt: skip

    # Only the rounding changed: the plain graph's logits are the float tail's, clipped to
    # the output quantizer's range and rounded to its grid (within half a step).
    q = next(n for n in reversed(list(plain.graph.nodes)) if "quantize_per_tensor" in str(n.target))
    scale, zero, lo, hi = (float(a) for a in q.args[1:5])
    rounded, unrounded = run(plain), run(floated)
    clipped = np.clip(unrounded, (lo - zero) * scale, (hi - zero) * scale)
    assert np.abs(rounded - clipped).max() <= scale * 0.5 + 1e-5
    assert np.abs(unrounded / scale - np.round(unrounded / scale)).max() > 0.05  # off-grid


def _pool_headed_net():
    """SqueezeNet's tail in small: the logits come out of a global average pool."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 5, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ).eval()  # fmt: skip


def test_pt2e_own_logit_scale_calibrates_the_pooled_logits_apart():
    """Full-integer logits on their own, finer int8 grid instead of the pool input's."""
    import torch
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from caltech_edge.compress.float_logits import pt2e_own_logit_scale

    images = torch.rand(16, 3, 24, 24) * 4 - 2

    def output_scales(own: bool) -> tuple[float, float]:
        """(scale of the pool's input, scale of the graph output) after calibration."""
        config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
        graph = torch.export.export(_pool_headed_net(), (images[:1],)).module()
        prepared = prepare_pt2e(graph, PT2EQuantizer().set_global(config))
        if own:
            assert pt2e_own_logit_scale(prepared) is True
            nodes = list(prepared.graph.nodes)
            pool = next(n for n in nodes if "adaptive_avg_pool2d" in str(n.target))
            after = [n for n in nodes[nodes.index(pool) + 1 :] if n.op == "call_module"]
            before = prepared.get_submodule(pool.args[0].target)
            assert after and all(prepared.get_submodule(n.target) is not before for n in after)
            assert len({n.target for n in after}) == 1  # flatten follows the new observer
        for i in range(len(images)):
            prepared(images[i : i + 1])
        converted = convert_pt2e(prepared, fold_quantize=False)
        nodes = list(converted.graph.nodes)
        pool = next(n for n in nodes if "adaptive_avg_pool2d" in str(n.target))
        last_q = [n for n in nodes if str(n.target).startswith("quantized_decomposed.quantize")]
        return float(pool.args[0].args[1]), float(last_q[-1].args[1])  # dequantize's scale

    shared_in, shared_out = output_scales(own=False)
    own_in, own_out = output_scales(own=True)
    assert shared_out == shared_in  # PT2E's default: the pool shares its input's grid
    assert own_in == shared_in and own_out < 0.7 * own_in  # averaging narrowed the range


def test_pt2e_own_logit_scale_leaves_a_linear_classifier_alone(tiny_model):
    import torch
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    from caltech_edge.compress.float_logits import pt2e_own_logit_scale

    model, card = tiny_model
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    graph = torch.export.export(model.eval(), (torch.zeros(card.input_shape),)).module()
    prepared = prepare_pt2e(graph, PT2EQuantizer().set_global(config))
    before = [(n.name, n.target) for n in prepared.graph.nodes]
    assert pt2e_own_logit_scale(prepared) is False  # a linear layer has its own output grid
    assert [(n.name, n.target) for n in prepared.graph.nodes] == before
