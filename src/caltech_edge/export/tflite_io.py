"""uint8 input/output for a full-integer ``.tflite``: QUANTIZE ops at the graph's edges.

litert-torch's PT2E converter writes int8 input and output tensors only; TensorFlow's
converter offered ``inference_input_type=tf.uint8`` and did it by exactly this rewrite
(``modify_model_interface``): a new uint8 tensor with the same scale and the zero point
moved by +128 takes the int8 tensor's place as the graph input (output), joined to it by a
QUANTIZE op. Requantizing between two tensors of equal scale whose zero points differ by
128 is exact, so the uint8 file computes bit for bit what the int8 one does; only the two
edges change type. Coral's older tools and many camera pipelines hand over uint8 pixels,
which is why users ask for it; the Edge TPU maps QUANTIZE like the rest of the graph.

Float tensors at the edges (the ``float-logits`` recipe's output) are left as they are.
"""

from __future__ import annotations

from typing import Any

from ..errors import ExportError

UINT8_SHIFT = 128  # int8 zero point z <-> uint8 zero point z + 128 at the same scale


def _schema() -> tuple[Any, Any]:
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError as exc:
        raise ExportError(
            "uint8 TFLite I/O needs ai-edge-litert (pip install 'caltech-edge[litert]')"
        ) from exc
    return schema, flatbuffer_utils


def _quantize_opcode(model: Any, schema: Any) -> int:
    """Index of the QUANTIZE operator code in ``model``, added if the graph has none."""
    code = schema.BuiltinOperator.QUANTIZE
    for i, op in enumerate(model.operatorCodes):
        if max(op.builtinCode, op.deprecatedBuiltinCode) == code:
            return i
    entry = schema.OperatorCodeT()
    entry.builtinCode = code
    entry.deprecatedBuiltinCode = min(code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    entry.version = 2  # int8 <-> uint8 requantization (TFLite op versioning)
    model.operatorCodes.append(entry)
    return len(model.operatorCodes) - 1


def _uint8_twin(model: Any, graph: Any, index: int, schema: Any) -> int:
    """A uint8 copy of int8 tensor ``index`` (zero point + 128); returns its index."""
    src = graph.tensors[index]
    twin = schema.TensorT()
    twin.name = (src.name.decode() if isinstance(src.name, bytes) else str(src.name)) + "_uint8"
    twin.shape, twin.shapeSignature = src.shape, src.shapeSignature
    twin.type = schema.TensorType.UINT8
    buffer = schema.BufferT()
    model.buffers.append(buffer)
    twin.buffer = len(model.buffers) - 1
    q = schema.QuantizationParametersT()
    q.scale = list(src.quantization.scale)
    q.zeroPoint = [int(z) + UINT8_SHIFT for z in src.quantization.zeroPoint]
    twin.quantization = q
    graph.tensors.append(twin)
    return len(graph.tensors) - 1


def _requantize(opcode: int, src: int, dst: int, schema: Any) -> Any:
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode, [src], [dst]
    return op


def uint8_interface(model_bytes: bytes) -> bytes:
    """``model_bytes`` with every int8 graph input and output turned into uint8 (exact)."""
    schema, fb = _schema()
    model = fb.read_model_from_bytearray(bytearray(model_bytes))
    int8 = schema.TensorType.INT8
    changed = 0
    for graph in model.subgraphs:
        renamed: dict[int, int] = {}
        for pos, index in enumerate(graph.inputs):
            if graph.tensors[index].type != int8:
                continue
            twin = _uint8_twin(model, graph, index, schema)
            graph.operators.insert(
                0, _requantize(_quantize_opcode(model, schema), twin, index, schema)
            )
            graph.inputs[pos], renamed[index] = twin, twin
        for pos, index in enumerate(graph.outputs):
            if graph.tensors[index].type != int8:
                continue
            twin = _uint8_twin(model, graph, index, schema)
            graph.operators.append(
                _requantize(_quantize_opcode(model, schema), index, twin, schema)
            )
            graph.outputs[pos], renamed[index] = twin, twin
        changed += len(renamed)
        _rename_signatures(model, model.subgraphs.index(graph), renamed)
    if not changed:
        raise ExportError("uint8 I/O: the model has no int8 input or output to convert")
    return bytes(fb.convert_object_to_bytearray(model))


def _rename_signatures(model: Any, subgraph: int, renamed: dict[int, int]) -> None:
    """Point the signature runner's tensor maps at the new uint8 edge tensors."""
    for sig in model.signatureDefs or []:
        if sig.subgraphIndex != subgraph:
            continue
        for entry in list(sig.inputs or []) + list(sig.outputs or []):
            entry.tensorIndex = renamed.get(entry.tensorIndex, entry.tensorIndex)
