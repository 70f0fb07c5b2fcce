"""Label-free per-layer sensitivity: which quantized layers to keep in float.

Why: on the real SqueezeNet every whole-network INT8 recipe flips 7-15 of 533 photos;
most of that damage comes from a few layers (typically the stem and the narrow squeeze
convolutions). Measuring each layer's share needs no labels: quantize everything, then
put one layer back in float at a time and see how much closer the logits come to the
FP32 model's on the calibration images. The layers whose return to float helps most are
the sensitive ones; keeping the worst ``k`` in float costs little size and speed.

The ranking (:func:`rank_layers`) is back-end neutral: a back end supplies the FP32
logits and a ``logits_without(layer)`` function. :func:`float_layers` is the ONNX QDQ
half: it turns quantized nodes back into float ones *without* re-calibrating (give them
their original float weights and float outputs, as ONNX Runtime's own exclusion does), so a sensitivity pass costs one inference per layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .recipes import logit_error

SENSITIVITY_IMAGES = 64  # calibration images the pass runs on (the held-out set stays unseen)


def calibration_images(calibration, limit: int = SENSITIVITY_IMAGES) -> np.ndarray:
    """Up to ``limit`` NCHW images from a calibration reader, spread over the whole set."""
    images = [img for batch in calibration for img in batch]
    calibration.rewind()
    step = max(1, len(images) // max(1, limit))
    return np.stack(images[::step][:limit])


def rank_layers(
    layers: Sequence[str],
    reference: np.ndarray,
    quantized: np.ndarray,
    logits_without: Callable[[str], np.ndarray],
) -> list[tuple[str, float]]:
    """``(layer, gain)`` most sensitive first.

    ``gain`` is how much the relative logit error against FP32 (``reference``) shrinks
    when only that layer goes back to float (``quantized``: all layers quantized).
    """
    base = logit_error(reference, quantized)
    gains = [(name, base - logit_error(reference, logits_without(name))) for name in layers]
    return sorted(gains, key=lambda item: -item[1])


# ---- ONNX QDQ graphs ---------------------------------------------------------------------


def quantized_nodes(model, op_types: Sequence[str] = ("Conv", "Gemm", "MatMul")) -> list[str]:
    """Names of weighted nodes whose weight comes from a DequantizeLinear, in graph order."""
    dq_outputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [
        n.name
        for n in model.graph.node
        if n.op_type in op_types and n.name and len(n.input) > 1 and n.input[1] in dq_outputs
    ]


def float_layers(qdq, fp32, names: Sequence[str]):
    """Copy of the QDQ model ``qdq`` where the nodes ``names`` compute in float.

    ``fp32`` is the float graph the QDQ model was made from (same node names): the nodes'
    weights/biases come from it and their outputs are float. An activation input stays
    quantized when a quantized node also reads it, and becomes float when only float
    nodes do: what ORT's own ``nodes_to_exclude`` produces. Q/DQ nodes left without
    consumers are removed.
    """
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(qdq)
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    consumers: dict[str, set[str]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, set()).add(n.name)
    fp_nodes = {n.name: n for n in fp32.graph.node}
    fp_inits = {i.name: i for i in fp32.graph.initializer}
    for node in model.graph.node:
        if node.name not in names:
            continue
        for idx, name in enumerate(node.input):
            dq = producers.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            if dq.input[0] not in inits:
                _bypass_input(model, fp32, node, idx, producers, consumers, names)
            elif node.name in fp_nodes:
                original = fp_nodes[node.name].input[idx]
                if original in fp_inits:  # weight / bias: the original float tensor
                    tensor = onnx.TensorProto()
                    tensor.CopyFrom(fp_inits[original])
                    tensor.name = f"{original}_float"
                    model.graph.initializer.append(tensor)
                    node.input[idx] = tensor.name
    for name in names:
        _restore_fused_activation(model, fp32, name)
    drop_dead_nodes(model)
    return model


def _bypass_input(model, fp32, node, idx, producers, consumers, names) -> None:
    """Feed ``node.input[idx]`` from before its Q/DQ pair if only float nodes read it.

    ORT folds a Relu into the producing Conv's uint8 output grid (zero point 0 clamps
    negatives), so the producer's activation is put back before the raw tensor is used.
    """
    dq = producers[node.input[idx]]
    q = producers.get(dq.input[0])
    if q is None or q.op_type != "QuantizeLinear" or not consumers[dq.output[0]] <= set(names):
        return
    source = producers.get(q.input[0])
    if source is not None:
        _restore_fused_activation(model, fp32, source.name)
    node.input[idx] = q.input[0]


def _restore_fused_activation(model, fp32, name: str) -> None:
    """Put back the Relu/Clip ONNX Runtime folded into a quantized node's output.

    Why: ORT's QDQ quantizer drops a Relu after Conv (the uint8 output grid with zero point
    0 clamps negatives anyway) and renames the Conv's output to the Relu's. Once that
    output is read in float, the Relu must be there again.
    """
    import onnx

    nodes = list(model.graph.node)
    pos, node = next(((i, n) for i, n in enumerate(nodes) if n.name == name), (-1, None))
    fp_node = next((n for n in fp32.graph.node if n.name == name), None)
    if node is None or fp_node is None or node.output[0] == fp_node.output[0]:
        return
    act = next((n for n in fp32.graph.node if list(n.output) == [node.output[0]]), None)
    if act is None or act.input[0] != fp_node.output[0]:
        return
    copy = onnx.NodeProto()
    copy.CopyFrom(act)
    for extra in act.input[1:]:  # Clip's min/max initializers
        init = next((i for i in fp32.graph.initializer if i.name == extra), None)
        if init is not None and extra not in {i.name for i in model.graph.initializer}:
            model.graph.initializer.append(init)
    node.output[0] = fp_node.output[0]
    model.graph.node.insert(pos + 1, copy)


def drop_dead_nodes(model) -> None:
    """Remove nodes (and initializers) no graph output depends on any more."""
    while True:
        used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
        dead = [n for n in model.graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            model.graph.node.remove(n)
    used = {i for n in model.graph.node for i in n.input}
    for init in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(init)


def onnx_predict(model) -> Callable[[np.ndarray], np.ndarray]:
    """``predict(NCHW) -> logits`` of an in-memory ONNX model (one image at a time)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [session.run(None, {name: batch[i : i + 1]})[0] for i in range(len(batch))]
        )

    return predict


def keep_sensitive_onnx(qdq, fp32, images: np.ndarray, k: int):
    """(QDQ model with the ``k`` most sensitive quantized nodes in float, their ranking)."""
    reference = onnx_predict(fp32)(images)
    quantized = onnx_predict(qdq)(images)
    layers = quantized_nodes(qdq)
    ranking = rank_layers(
        layers,
        reference,
        quantized,
        lambda name: onnx_predict(float_layers(qdq, fp32, [name]))(images),
    )
    chosen = [name for name, gain in ranking[: int(k)] if gain > 0]
    return float_layers(qdq, fp32, chosen), ranking
