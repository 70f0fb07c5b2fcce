"""Coral Edge TPU: a compatibility report from the documented op list, and the compiler step.

Nothing here runs an Edge TPU. :func:`compatibility_report` reads a full-integer
``.tflite`` and predicts, from Coral's documented requirements
(https://coral.ai/docs/edgetpu/models-intro/, "Supported operations" and "Model
requirements"), which ops the compiler would map to the TPU and which would stay on the
CPU: the op must be in :data:`EDGETPU_OPS`, its tensors int8/uint8, shapes static, at most
3 dimensions larger than 1. The compiler cuts the graph once, at the first op it cannot
map; that op and every op after it run on the CPU, which the report shows as well.

:func:`compile_edgetpu` (the ``edgetpu`` row) runs ``edgetpu_compiler`` when it is on
PATH and keeps its log; otherwise it writes the exact command into ``edgetpu_compile.json``
and ``compile_edgetpu.sh`` and says that nothing was compiled. The compiler is an x86-64
Debian package from Coral's apt repository, not on any registry reachable here.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .._io import atomic_write_json, atomic_write_text
from ..card import ModelCard, sidecar_path
from ..errors import ExportError

REPORT_NAME = "edgetpu_report.json"
PLAN_NAME = "edgetpu_compile.json"
COMPILER = "edgetpu_compiler"
DOC_URL = "https://coral.ai/docs/edgetpu/models-intro/#supported-operations"

# TFLite builtin ops the Edge TPU compiler maps (Coral's documented table, compiler 16).
EDGETPU_OPS = frozenset(
    [
        "ABS",
        "ADD",
        "AVERAGE_POOL_2D",
        "CONCATENATION",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "DEPTH_TO_SPACE",
        "EXPAND_DIMS",
        "FULLY_CONNECTED",
        "GATHER",
        "HARD_SWISH",
        "L2_NORMALIZATION",
        "LOGISTIC",
        "MAXIMUM",
        "MAX_POOL_2D",
        "MEAN",
        "MINIMUM",
        "MUL",
        "PACK",
        "PAD",
        "PRELU",
        "QUANTIZE",
        "REDUCE_MAX",
        "REDUCE_MIN",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR",
        "RSQRT",
        "SLICE",
        "SOFTMAX",
        "SPACE_TO_DEPTH",
        "SPLIT",
        "SQUARED_DIFFERENCE",
        "SQUEEZE",
        "STRIDED_SLICE",
        "SUB",
        "SUM",
        "TANH",
        "TRANSPOSE",
        "TRANSPOSE_CONV",
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
    ]
)
_INT_TYPES = ("INT8", "UINT8", "INT32")  # int32 only for biases/shape operands


def _is_constant(model: Any, tensor: Any) -> bool:
    """Weights/biases live in a non-empty buffer; activations have none."""
    buffer = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) else None
    return buffer is not None and (
        (buffer.data is not None and len(buffer.data) > 0) or bool(getattr(buffer, "size", 0))
    )


def _op_problems(model: Any, sub: Any, op: Any, name: str, type_name: Any) -> list[str]:
    problems = [] if name in EDGETPU_OPS else ["op not in the Edge TPU's supported set"]
    for index in [*op.inputs, *op.outputs]:
        if index < 0:
            continue
        tensor = sub.tensors[index]
        kind = type_name(tensor.type)
        if kind not in _INT_TYPES:
            problems.append(f"tensor of type {kind.lower()} (needs int8/uint8)")
        signature = tensor.shapeSignature if tensor.shapeSignature is not None else []
        if any(int(d) < 0 for d in signature):
            problems.append("dynamic shape")
        shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
        if not _is_constant(model, tensor) and sum(d > 1 for d in shape) > 3:
            problems.append(f"tensor {shape} has more than 3 dimensions larger than 1")
    return sorted(set(problems))


def compatibility_report(tflite_path: str | Path) -> dict[str, Any]:
    """Which ops of ``tflite_path`` the Edge TPU would run (predicted, not compiled)."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    path = Path(tflite_path)
    model = fu.read_model(path)
    sub = model.subgraphs[0]
    ops: list[dict[str, Any]] = []
    cut = None
    for i, op in enumerate(sub.operators):
        name = fu.opcode_to_name(model, op.opcodeIndex) or f"opcode {op.opcodeIndex}"
        problems = _op_problems(model, sub, op, name, fu.type_to_name)
        if problems and cut is None:
            cut = i
        placement = "tpu" if cut is None else "cpu"
        ops.append({"index": i, "op": name, "placement": placement, "problems": problems})
    counts: dict[str, dict[str, int]] = {}
    for entry in ops:
        slot = counts.setdefault(str(entry["op"]), {"tpu": 0, "cpu": 0})
        slot[str(entry["placement"])] += 1
    return {
        "model": path.name,
        "predicted_from": DOC_URL,
        "compiled": False,
        "note": "a prediction from the documented op list; only edgetpu_compiler decides",
        "subgraphs": len(model.subgraphs),
        "ops_total": len(ops),
        "ops_on_tpu": sum(e["placement"] == "tpu" for e in ops),
        "ops_on_cpu": sum(e["placement"] == "cpu" for e in ops),
        "first_cpu_op": None if cut is None else ops[cut],
        "by_op": counts,
        "ops": ops,
    }


def write_compatibility_report(tflite_path: str | Path) -> Path:
    path = Path(tflite_path)
    return atomic_write_json(path.with_name(REPORT_NAME), compatibility_report(path))


def compile_command(tflite_path: Path, out_dir: Path) -> list[str]:
    """The exact compiler call: ``-s`` prints the per-op mapping table into the log."""
    return [COMPILER, "-s", "-o", str(out_dir), str(tflite_path)]


def compile_edgetpu(
    tflite_path: str | Path, dst: str | Path, *, card: ModelCard, timeout: float = 600.0
) -> Path:
    """``model_edgetpu.tflite`` + ``edgetpu_compiler.log`` when the compiler is installed;
    otherwise ``edgetpu_compile.json`` holding the command, the reason and the report."""
    src, dst = Path(tflite_path), Path(dst)
    out_dir = dst.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    report = compatibility_report(src)
    atomic_write_json(out_dir / REPORT_NAME, report)
    local = out_dir / src.name
    if local.resolve() != src.resolve():
        shutil.copyfile(src, local)  # the bundle keeps the CPU model beside the TPU one
        shutil.copyfile(sidecar_path(src), sidecar_path(local))
    command = compile_command(local, out_dir)
    atomic_write_text(
        out_dir / "compile_edgetpu.sh",
        "#!/bin/sh\n# Compile for the Coral Edge TPU (apt-get install edgetpu-compiler)\n"
        'cd "$(dirname "$0")" && ' + shlex.join(compile_command(Path(src.name), Path("."))) + "\n",
    )
    if shutil.which(COMPILER) is None:
        plan = {
            "compiled": False,
            "reason": f"{COMPILER} is not on PATH (Coral's apt package, x86-64 Linux only)",
            "command": shlex.join(command),
            "install": "https://coral.ai/docs/edgetpu/compiler/#download",
            "compatibility": {k: report[k] for k in ("ops_total", "ops_on_tpu", "ops_on_cpu")},
            "source": src.name,
        }
        plan_path = out_dir / PLAN_NAME
        atomic_write_json(plan_path, plan)
        card.replace(format="edgetpu-plan", precision="int8").save(sidecar_path(plan_path))
        return plan_path
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    log_text = f"$ {shlex.join(command)}\n{done.stdout}{done.stderr}"
    atomic_write_text(out_dir / "edgetpu_compiler.log", log_text)
    compiled = out_dir / (local.stem + "_edgetpu.tflite")
    if done.returncode != 0 or not compiled.is_file():
        raise ExportError(
            f"{src}: edgetpu_compiler failed (exit {done.returncode}); see "
            f"{out_dir / 'edgetpu_compiler.log'}"
        )
    if compiled != dst:
        compiled.replace(dst)
    src_card = json.loads(sidecar_path(src).read_text(encoding="utf-8"))
    ModelCard.from_dict(src_card).replace(format="edgetpu").save(sidecar_path(dst))
    return dst
