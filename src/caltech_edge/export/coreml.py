"""PyTorch -> Core ML ML Program (``model.mlpackage``) for the Apple Neural Engine.

What an iOS/macOS developer expects from an image classifier: an **image** input (a
``CVPixelBuffer``, no manual normalization), a **classifier** output (``classLabel`` and
``classLabel_probs`` with the labels), FP16 compute (what the Neural Engine runs).

Preprocessing in the model: Core ML's ``ImageType`` applies ``scale * pixel + bias`` with
one scalar scale and a per-channel bias, but the card's normalization is
``(pixel / 255 - mean_c) / std_c`` with a per-channel std. So the ImageType carries
``scale = 1/255`` and ``bias = -mean_c``, and a per-channel multiply by ``1/std_c`` is
prepended to the network (Core ML's optimizer may fold it into the first convolution).
A softmax is appended so ``classLabel_probs`` are probabilities. The resize and center
crop stay with the app (Vision's ``VNCoreMLRequest`` with ``imageCropAndScaleOption =
.centerCrop`` does both), as the card describes.

Optional INT8 weight compression (``weights="int8"``): ``coremltools.optimize``'s
symmetric per-channel linear quantization of the weights; compute stays FP16.

Verification: ``MLModel.predict`` only runs on macOS. :func:`verify_coreml_structure`
checks what Linux can check (spec type, input name/size/color layout, the ImageType
scale/bias constants in the program, classifier labels, the embedded card) and says so.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._registry import require
from ..card import METADATA_KEY, ModelCard, sidecar_path
from ..errors import ConfigError, ExportError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

INPUT_NAME = "image"
LABEL_OUTPUT = "classLabel"
PROBS_OUTPUT = "classLabel_probs"
WEIGHTS = ("fp16", "int8")


def _head(model: nn.Module, std: tuple[float, float, float]) -> nn.Module:
    """``model`` behind a per-channel 1/std multiply and in front of a softmax."""
    import torch

    class NormalizedClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            inv = torch.tensor([1.0 / s for s in std], dtype=torch.float32).view(1, 3, 1, 1)
            self.inv_std: torch.Tensor
            self.register_buffer("inv_std", inv)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.model(x * self.inv_std), dim=1)

    return NormalizedClassifier().eval()


def image_type_constants(card: ModelCard) -> dict[str, Any]:
    """The ImageType scale/bias the card's preprocessing turns into."""
    spec = card.preprocess
    return {
        "scale": 1.0 / 255.0,
        "bias": [-m for m in spec.mean],
        "inv_std": [1 / s for s in spec.std],
    }


def export_coreml(
    model: nn.Module,
    card: ModelCard,
    path: str | Path,
    *,
    weights: str = "fp16",
    opset: int | None = None,
    dynamic_batch: bool = False,
) -> Path:
    """``model.mlpackage`` (ML Program, FP16 compute, image in, labels out) at ``path``."""
    from .tflite import static_batch

    static_batch("Core ML", dynamic_batch)
    ct = require("coremltools", "coreml", purpose="Core ML export")
    import torch

    from ..models import static_padding

    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHTS)}; got {weights!r}")
    path = Path(path)
    consts = image_type_constants(card)
    layout = ct.colorlayout.RGB if card.preprocess.channel_order == "RGB" else ct.colorlayout.BGR
    sample = torch.zeros(card.input_shape, dtype=torch.float32)
    try:
        with torch.no_grad():
            static = static_padding(model.eval(), card.input_shape)
            traced = torch.jit.trace(_head(static, card.preprocess.std), sample)
        mlmodel = ct.convert(
            traced,
            inputs=[
                ct.ImageType(
                    name=INPUT_NAME,
                    shape=card.input_shape,
                    scale=consts["scale"],
                    bias=consts["bias"],
                    color_layout=layout,
                )
            ],
            classifier_config=ct.ClassifierConfig(
                list(card.class_names), predicted_feature_name=LABEL_OUTPUT
            ),
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=ct.target.iOS15,
        )
        if weights == "int8":
            from coremltools.optimize import coreml as cto

            config = cto.OptimizationConfig(
                global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric")
            )
            mlmodel = cto.linear_quantize_weights(mlmodel, config)
    except Exception as exc:
        raise ExportError(
            f"{path}: coremltools could not convert ({type(exc).__name__}: {exc})"
        ) from exc
    out = card.replace(
        format="coreml",
        precision="fp16",
        input_name=INPUT_NAME,
        extra={**card.extra, "coreml": {"weights": weights, **consts, "outputs": PROBS_OUTPUT}},
    )
    mlmodel.user_defined_metadata[METADATA_KEY] = out.to_json()
    mlmodel.short_description = f"{card.name}: {card.num_classes}-class image classifier"
    mlmodel.input_description[INPUT_NAME] = (
        f"{card.preprocess.channel_order} image, {card.preprocess.image_size} px center crop "
        f"of the shorter side resized to {card.preprocess.resize_size}"
    )
    _save_atomic(mlmodel, path)
    out.save(sidecar_path(path))
    return path


def _save_atomic(mlmodel: Any, path: Path) -> None:
    """An mlpackage is a folder: save beside, then swap it in (never half a package)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".mlpackage-", dir=path.parent))
    try:
        mlmodel.save(str(tmp / path.name))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- structural verification (Linux) ----------------------------------------------------
def _program_ops(mlmodel: Any) -> list[Any]:
    from coremltools.converters.mil.frontend.milproto.load import load

    spec = mlmodel.get_spec()
    prog = load(
        spec, specification_version=spec.specificationVersion, file_weights_dir=mlmodel.weights_dir
    )
    return list(prog.functions["main"].operations)


def _input_consts(ops: list[Any]) -> dict[str, Any]:
    """The scale (``mul``) and bias (``add``) the ImageType put in front of the network."""
    found: dict[str, Any] = {"scale": None, "bias": [0.0, 0.0, 0.0]}
    current = INPUT_NAME
    for op in ops:
        x = op.inputs.get("x")
        if x is None or x.name != current or op.op_type not in ("mul", "add"):
            continue
        value = np.asarray(op.inputs["y"].val, dtype=np.float64).reshape(-1)
        if op.op_type == "mul" and found["scale"] is None:
            found["scale"] = float(value[0])
        elif op.op_type == "add":
            found["bias"] = [float(v) for v in np.broadcast_to(value, (3,))]
        current = op.outputs[0].name
    return found


def coreml_structure(path: str | Path) -> dict[str, Any]:
    """What the saved package declares, read without running it."""
    ct = require("coremltools", "coreml", purpose="reading Core ML packages")
    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    spec = mlmodel.get_spec()
    desc = spec.description
    image = desc.input[0].type.imageType
    ops = _program_ops(mlmodel)
    classify = [op for op in ops if op.op_type == "classify"]
    labels = [str(c) for c in classify[0].inputs["classes"].val] if classify else []
    return {
        "type": spec.WhichOneof("Type"),
        "inputs": [i.name for i in desc.input],
        "input_size": [int(image.height), int(image.width)],
        "color_layout": ct.proto.FeatureTypes_pb2.ImageFeatureType.ColorSpace.Name(
            image.colorSpace
        ),
        "outputs": [o.name for o in desc.output],
        "predicted_feature": desc.predictedFeatureName,
        "probabilities": desc.predictedProbabilitiesName,
        "labels": labels,
        "card": dict(desc.metadata.userDefined).get(METADATA_KEY),
        **_input_consts(ops),
    }


def structure_problems(found: dict[str, Any], card: ModelCard) -> list[str]:
    """Every way the package differs from what the card says it should be."""
    want = image_type_constants(card)
    size = card.preprocess.image_size
    checks = [
        (found["type"] == "mlProgram", f"model type {found['type']} (want mlProgram)"),
        (found["inputs"] == [INPUT_NAME], f"inputs {found['inputs']} (want ['{INPUT_NAME}'])"),
        (found["input_size"] == [size, size], f"input size {found['input_size']} (want {size})"),
        (
            found["color_layout"] == card.preprocess.channel_order,
            f"color layout {found['color_layout']} (want {card.preprocess.channel_order})",
        ),
        (
            found["predicted_feature"] == LABEL_OUTPUT and found["probabilities"] == PROBS_OUTPUT,
            f"classifier outputs {found['outputs']}",
        ),
        (found["labels"] == list(card.class_names), "classifier labels differ from the card"),
        (
            found["scale"] is not None and abs(found["scale"] - want["scale"]) < 1e-6,
            f"ImageType scale {found['scale']} (want {want['scale']:.6g})",
        ),
        (
            np.allclose(found["bias"], want["bias"], atol=1e-5),
            f"ImageType bias {found['bias']} (want {want['bias']})",
        ),
        (found["card"] is not None, f"no {METADATA_KEY} in user_defined_metadata"),
    ]
    return [message for ok, message in checks if not ok]


def numeric_possible() -> bool:
    """``MLModel.predict`` needs macOS (Core ML framework); everywhere else: structural."""
    return sys.platform == "darwin"
