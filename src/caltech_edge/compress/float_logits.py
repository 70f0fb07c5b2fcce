"""Keep the logits in float: drop the INT8 rounding after the network's last reduction.

Why: a classifier's logits leave the last convolution / global pooling / linear layer and
go straight to arg-max. Every INT8 recipe also rounds them to 256 levels of one
per-tensor scale (for the real SqueezeNet, 257 class scores of range ~40 in steps of
~0.16), and every photo whose top-2 margin is smaller than a step can flip. That, not
the convolutions, was most of the PT2E rows' disagreement with FP32: on the 533 real
photos, quantizing everything gave 97.4% top-1 agreement, the same graph with the
rounding after the global pool removed 98.1% (per-tensor weights: 98.3%, accuracy equal
to FP32). The float tail is a few hundred multiply-adds: it costs no measurable speed,
unlike keeping a convolution in float.

One rule for both graph kinds: find the last op that mixes values (convolution, linear,
pooling, mean); every quantize -> dequantize pair after it is removed, so what follows
computes in float from the last quantized tensor. The ONNX half edits a QDQ model
(ONNX Runtime and TensorRT run the float tail as float); the PT2E half edits a converted
``torch.fx`` graph before it is lowered (LiteRT writes a DEQUANTIZE and a float output,
XNNPACK runs the tail in fp32).
"""

from __future__ import annotations

from typing import Any

# ONNX op types after which values are no longer rearranged, only scored.
ONNX_REDUCERS = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "AveragePool",
        "MaxPool",
        "ReduceMean",
    }
)

# aten targets playing that role in an exported torch graph (by name: no torch import here).
PT2E_REDUCERS = frozenset(
    {
        "aten.conv2d.default",
        "aten.convolution.default",
        "aten.linear.default",
        "aten.addmm.default",
        "aten.mm.default",
        "aten.adaptive_avg_pool2d.default",
        "aten.avg_pool2d.default",
        "aten.max_pool2d.default",
        "aten.mean.dim",
    }
)


def onnx_float_logits(model: Any) -> int:
    """Remove the Q/DQ pairs after the last reducing node of the QDQ ``model`` (in place).

    A DequantizeLinear whose output is a graph output becomes an Identity of the float
    tensor, so output names never change. Returns how many pairs were removed.
    """
    import onnx

    nodes = list(model.graph.node)
    last = max((i for i, n in enumerate(nodes) if n.op_type in ONNX_REDUCERS), default=-1)
    if last < 0:
        return 0
    producers = {o: n for n in nodes for o in n.output}
    outputs = {o.name for o in model.graph.output}
    removed = 0
    for node in nodes[last + 1 :]:
        q = producers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear":
            continue
        source, target = q.input[0], node.output[0]
        if target in outputs:
            identity = onnx.helper.make_node("Identity", [source], [target], name=node.name)
            model.graph.node.insert(list(model.graph.node).index(node), identity)
        else:
            for consumer in model.graph.node:
                for k, name in enumerate(consumer.input):
                    if name == target:
                        consumer.input[k] = source
        model.graph.node.remove(node)
        removed += 1
    from .sensitivity import drop_dead_nodes

    drop_dead_nodes(model)  # the QuantizeLinear nodes nothing reads any more
    return removed


def _is(node: Any, kind: str) -> bool:
    """``kind`` is "quantize" or "dequantize": torchao's quantized_decomposed ops."""
    target = str(node.target) if node.op == "call_function" else ""
    name = target.rsplit(".", 2)[-2] if target.count(".") >= 2 else target
    return name.startswith(kind + "_per_")


def _last_reducer(nodes: list[Any]) -> int | None:
    """Index of the last op in ``nodes`` (a torch.fx graph, in order) that mixes values."""
    found = [
        i for i, n in enumerate(nodes) if n.op == "call_function" and str(n.target) in PT2E_REDUCERS
    ]
    return found[-1] if found else None


def pt2e_float_logits(graph_module: Any) -> int:
    """Remove the quantize -> dequantize pairs after the last reducing op of a converted
    PT2E ``graph_module`` (in place, recompiled). Returns how many pairs were removed.

    When that op is a convolution or linear layer its output is now float, so it becomes a
    float layer on a dequantized input: its weight is dequantized once into a float
    constant (ExecuTorch's XNNPACK delegate has no int8-weight/float-output kernel)."""
    nodes = list(graph_module.graph.nodes)
    last = _last_reducer(nodes)
    if last is None:
        return 0
    removed = 0
    for node in nodes[last + 1 :]:
        if _is(node, "dequantize") and _is(node.args[0], "quantize"):
            node.replace_all_uses_with(node.args[0].args[0])
            removed += 1
    if removed:
        _float_weights(graph_module, nodes[last])
    graph_module.graph.eliminate_dead_code()
    graph_module.recompile()
    return removed


def pt2e_own_logit_scale(prepared: Any) -> bool:
    """Give the output of the last reducing op its own observer in a *prepared* PT2E graph.

    The full-integer alternative to float logits. PT2E quantizers share one scale between
    a pooling op's input and output (TFLite's AVERAGE_POOL_2D needs that; the MEAN that a
    global pool becomes does not). The input is the last convolution's per-pixel output;
    averaging shrinks its range, so the shared scale wastes most of the 256 levels on the
    logits. On the real SqueezeNet the shared scale was 0.32 for top logits of ~18: 10 of
    the 17 full-integer disagreements with FP32 on the 533 photos were exact int8 ties at
    the maximum. A fresh observer lets the logits calibrate to their own, narrower range;
    every later observer that shared the old one (flatten, view) follows the new one.

    The new observer is always min/max, whatever the recipe's: a range that clips the
    logits (histogram, moving average) saturates the best classes at 127 and ties them,
    the failure this is meant to remove (moving-average logits: 88% agreement). Returns
    whether anything changed.
    """
    from torchao.quantization.pt2e.observer import MinMaxObserver

    nodes = list(prepared.graph.nodes)
    last = _last_reducer(nodes)
    if last is None:
        return False
    reducer = nodes[last]
    source = reducer.args[0] if reducer.args else None
    if getattr(source, "op", None) != "call_module":
        return False
    shared = prepared.get_submodule(source.target)
    later = [
        n
        for n in nodes[last + 1 :]
        if n.op == "call_module" and prepared.get_submodule(n.target) is shared
    ]
    if not later:
        return False
    name = f"{source.target}_logits"
    fresh = MinMaxObserver(dtype=shared.dtype, qscheme=shared.qscheme, quant_min=shared.quant_min,
                           quant_max=shared.quant_max, eps=float(shared.eps))  # fmt: skip
    prepared.add_submodule(name, fresh)
    for node in later:
        node.target = name
    prepared.recompile()
    return True


def _float_weights(graph_module: Any, layer: Any) -> None:
    """Give ``layer`` its weight and bias as float constants if they come through a dequantize."""
    for k, arg in enumerate(layer.args[1:3], start=1):
        if arg is None or not hasattr(arg, "op") or not _is(arg, "dequantize"):
            continue
        name = f"_float_logits_{layer.name}_{k}"
        graph_module.register_buffer(name, _evaluate(graph_module, arg))
        with graph_module.graph.inserting_before(layer):
            layer.replace_input_with(arg, graph_module.graph.get_attr(name))


def _evaluate(graph_module: Any, node: Any) -> Any:
    """Value of a constant subgraph (get_attr -> quantize -> dequantize)."""
    if node.op == "get_attr":
        value = graph_module
        for part in node.target.split("."):
            value = getattr(value, part)
        return value.detach().clone()
    args = [_evaluate(graph_module, a) if hasattr(a, "op") else a for a in node.args]
    return node.target(*args, **node.kwargs)
