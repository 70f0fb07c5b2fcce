"""What each device needs beyond the generic bundle (hooks of the TARGETS registry).

A hook gets ``(export_dir, out, models, card)`` after the generic files are written and
returns extra manifest entries (``"readme"``: text appended to README.md). Commands for
tools that do not exist here (``edgetpu_compiler``, ``trtexec``) are written out exactly
and run only when the tool is on PATH; nothing claims a result that was not produced.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..._io import atomic_write_text
from ...card import ModelCard
from ...errors import ExportError
from .build import BundleModel, _write_exec


def deeplens(export_dir: Path, out: Path) -> dict[str, Any]:
    """Today's DeepLens package: model.tar.gz + lambda.zip (see export/package.py)."""
    from ..package import package

    tar, zip_ = package(export_dir, out=out)
    return {"model_tar_gz": tar, "lambda_zip": zip_}


def rpi(export_dir: Path, out: Path, models: list[BundleModel], card: ModelCard) -> dict:
    return {
        "readme": "## Raspberry Pi notes\n\n64-bit Raspberry Pi OS (Bookworm, Python 3.11) has "
        "wheels for every pin. Camera: `SOURCE=0` (USB/V4L2) or an rtsp:// URL; the CSI camera "
        "through libcamera's V4L2 compatibility layer. The default model is the first of "
        + ", ".join(m.format for m in models)
        + "; switch with MODEL= and BACKEND= in device.env.\n"
    }


def _edgetpu_command(model: str) -> list[str]:
    return ["edgetpu_compiler", "--show_operations", "--out_dir", "models/edgetpu", model]


def coral(export_dir: Path, out: Path, models: list[BundleModel], card: ModelCard) -> dict:
    """Full-integer check, the Edge TPU compile command (run when the compiler exists)."""
    int8 = next((m for m in models if m.format == "tflite-int8"), models[0])
    dtype = int8.check.get("input_dtype")
    if dtype not in ("int8", "uint8"):
        raise ExportError(
            f"{int8.path}: input tensor is {dtype}, the Edge TPU needs a full-integer model; "
            f"export tflite-int8 (int8 or uint8 I/O) for Coral"
        )
    command = _edgetpu_command(int8.rel)
    script = "#!/bin/sh\n# Compile for the Edge TPU (on an x86-64 Debian/Ubuntu with edgetpu-compiler).\n"
    script += 'set -eu\ncd "$(dirname "$0")"\n' + shlex.join(command) + "\n"
    _write_exec(out / "compile_edgetpu.sh", script)
    result: dict[str, Any] = {"edgetpu_compiler_command": shlex.join(command)}
    if shutil.which("edgetpu_compiler"):
        proc = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=600)
        atomic_write_text(out / "models" / "edgetpu_compiler.log", proc.stdout + proc.stderr)
        result["edgetpu_compiler"] = {
            "returncode": proc.returncode,
            "log": "models/edgetpu_compiler.log",
        }
    else:
        result["edgetpu_compiler"] = "not on PATH here: run compile_edgetpu.sh where it is"
    reports = sorted(str(p.relative_to(out)) for p in (out / "models").rglob("*report*"))
    result["edgetpu_reports"] = reports
    result["readme"] = (
        "## Coral notes\n\nInstall `libedgetpu1-std` from Coral's apt repository "
        "(https://coral.ai/software/). Compile the full-integer model with\n\n    "
        + shlex.join(command)
        + "\n\n(`compile_edgetpu.sh`), then set MODEL=models/edgetpu/model_edgetpu.tflite. The "
        "litert backend loads `libedgetpu.so.1` as a delegate when present; without it the "
        "uncompiled tflite-int8 runs on the CPU. Which ops would run on the TPU: "
        + (", ".join(f"`{r}`" for r in reports) or "no report in the export (export tflite-int8)")
        + ". Edge TPU results were NOT measured here (no TPU, no compiler on this machine).\n"
    )
    return result


def jetson(export_dir: Path, out: Path, models: list[BundleModel], card: ModelCard) -> dict:
    """The exact trtexec commands; ONNX Runtime runs the same files meanwhile."""
    lines = [
        "#!/bin/sh",
        "# Build TensorRT engines on the Jetson (JetPack puts trtexec in /usr/src/tensorrt/bin).",
        "set -eu",
        'cd "$(dirname "$0")"',
        'TRTEXEC="${TRTEXEC:-/usr/src/tensorrt/bin/trtexec}"',
    ]
    commands = {}
    for m in models:
        flag = "--int8" if m.precision == "int8" else "--fp16"
        engine = m.rel.rsplit(".", 1)[0] + ".engine"
        cmd = f'"$TRTEXEC" --onnx={m.rel} {flag} --saveEngine={engine}'
        commands[m.format] = cmd.replace('"$TRTEXEC"', "trtexec")
        lines.append(cmd)
    _write_exec(out / "build_engines.sh", "\n".join(lines) + "\n")
    return {
        "trtexec_commands": commands,
        "readme": "## Jetson notes\n\nThe bundle runs the ONNX model with ONNX Runtime (CPU "
        "wheel from PyPI; `onnxruntime-gpu` from NVIDIA's Jetson Zoo adds CUDA/TensorRT "
        "execution providers). `build_engines.sh` builds TensorRT engines with\n\n"
        + "\n".join(f"    {c}" for c in commands.values())
        + "\n\nThe INT8 ONNX carries explicit Q/DQ scales, so trtexec needs no calibration "
        "cache. Engines and GPU latency were NOT produced here (no NVIDIA GPU).\n",
    }


def coreml(export_dir: Path, out: Path, models: list[BundleModel], card: ModelCard) -> dict:
    m = models[0]
    usage = (
        "## Core ML usage (macOS 13+ / iOS 16+)\n\n"
        "```python\nimport coremltools as ct\nfrom PIL import Image\n"
        f"model = ct.models.MLModel('{m.rel}')\n"
        f"img = Image.open('photo.jpg').convert('RGB').resize(({card.preprocess.image_size}, "
        f"{card.preprocess.image_size}))\n"
        "print(model.predict({'data': img})['classLabel'])\n```\n\n"
        "The ImageType input applies the card's normalisation; resize/crop as the card says "
        f"(shorter side {card.preprocess.resize_size}, centre crop {card.preprocess.image_size}"
        "). In Xcode, drag the mlpackage into the project and use the generated class with "
        "Vision's VNCoreMLRequest. Or, on a Mac: `venv/bin/python bin/caltech-edge infer "
        f"--model {m.rel} --source 0 --json`. Checked here structurally only (Linux cannot "
        "run Core ML).\n"
    )
    return {"readme": usage}
