"""The real SqueezeNet 1.1 Caltech-256 weights in the device formats, on real Caltech-256
photos: FP32/FP16 give PyTorch's top-1; INT8 (one recipe each, to keep the test short; the
export rows search several) agrees on >= 96% and stays within 3 points of its accuracy. The
full 533-image figures with the recipe search are in docs/export.md."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from caltech_edge.export.pipeline import load_checkpoint_source
from caltech_edge.export.verify import load_images, torch_predictor, verify_artifact

IMAGES = 100  # 20 per class of the 5 sample classes

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


@pytest.fixture(scope="module")
def real(shared_data, squeezenet_weights, sample_root):
    classes = shared_data / "weights" / "squeezenet1_1_caltech256_idx_to_class.txt"
    source = load_checkpoint_source(squeezenet_weights, "squeezenet1_1", classes)
    images = load_images(source.card, data=sample_root, limit=IMAGES)
    reference = torch_predictor(source.model)(images.batch)
    return source, images, reference


@pytest.fixture(scope="module")
def calibration(real, sample_root):
    from caltech_edge.data.calibration import CalibrationReader

    source = real[0]
    return CalibrationReader.from_dataset(sample_root, spec=source.card.preprocess, warn=False)


def _check(path, real, backend, *, fp: bool):
    source, images, reference = real
    report = verify_artifact(
        path, against=source.model, images=images, reference=reference, backend=backend,
        card=None, check=False,
    )  # fmt: skip
    print(f"\n{report.summary()}")
    assert report.images == IMAGES and report.passed, report.summary()
    assert 0.75 <= report.source_accuracy <= 0.92
    if fp:
        assert report.top1_agreement == 1.0
        assert report.artifact_accuracy == report.source_accuracy
    else:
        assert report.top1_agreement >= 0.96
        assert report.artifact_accuracy >= report.source_accuracy - 0.03
    return report


def test_real_tflite_fp32_and_int8(real, calibration, tmp_path):
    from caltech_edge.export.tflite import export_tflite, quantize_tflite

    source = real[0]
    fp32 = export_tflite(source.model, source.card, tmp_path / "fp32" / "model.tflite")
    assert _check(fp32, real, "litert", fp=True).max_abs_diff < 1e-3
    int8 = quantize_tflite(
        source.model, source.card, tmp_path / "int8" / "model.tflite", calibration=calibration
    )
    _check(int8, real, "litert", fp=False)
    from caltech_edge.runtime.backends.litert import tflite_card

    # SqueezeNet's logits leave a global pool: they got their own int8 scale (the card says so)
    assert tflite_card(int8).extra["quantization"]["logits"] == "int8, own scale"


def test_real_executorch_fp32_and_int8(real, calibration, tmp_path):
    from caltech_edge.export.executorch import export_executorch, quantize_executorch

    source = real[0]
    fp32 = export_executorch(source.model, source.card, tmp_path / "fp32" / "model.pte")
    assert _check(fp32, real, "executorch", fp=True).max_abs_diff < 1e-3
    int8 = quantize_executorch(
        source.model, source.card, tmp_path / "int8" / "model.pte", calibration=calibration
    )
    _check(int8, real, "executorch", fp=False)


def test_real_onnx_trt_int8(real, calibration, tmp_path):
    from caltech_edge.compress.recipes import logit_error, runtime_infer
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.export.tensorrt import INT8_RECIPES, quantize_trt_onnx

    source, images, reference = real
    onnx_path = export_onnx(source.model, source.card, tmp_path / "model.onnx")
    first = dict(INT8_RECIPES[0][1])  # the search's first recipe: bias-corrected
    assert first["bias_correction"] is True
    corrected = quantize_trt_onnx(
        onnx_path, tmp_path / "bc" / "model.onnx", calibration=calibration, **first
    )
    _check(corrected, real, "onnxruntime", fp=False)
    plain = quantize_trt_onnx(
        onnx_path, tmp_path / "plain" / "model.onnx", calibration=calibration,
        **{**first, "bias_correction": False},
    )  # fmt: skip
    # On real photos the corrected biases bring the logits markedly closer to FP32
    errors = [logit_error(reference, runtime_infer(p)(images.batch)) for p in (corrected, plain)]
    assert errors[0] < 0.8 * errors[1], errors


@pytest.mark.skipif(
    shutil.which("trtexec") is None or shutil.which("nvidia-smi") is None,
    reason="building a TensorRT engine needs TensorRT (trtexec) and an NVIDIA GPU",
)
def test_real_tensorrt_engine_matches_pytorch(real, calibration, tmp_path):
    """The Jetson route end to end: the bundled trtexec command builds the engine from the
    QDQ graph, and the engine gives PyTorch's top-1 on the real photos."""
    import onnx

    pytest.importorskip("polygraphy", reason="running the engine needs polygraphy + tensorrt")
    from polygraphy.backend.common import BytesFromPath
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner

    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.export.tensorrt import quantize_trt_onnx

    source, images, reference = real
    onnx_path = export_onnx(source.model, source.card, tmp_path / "model.onnx")
    int8 = quantize_trt_onnx(onnx_path, tmp_path / "trt" / "model.onnx", calibration=calibration)
    built = subprocess.run(["sh", str(int8.parent / "trtexec.sh")], capture_output=True, text=True)
    engine = int8.parent / "model.engine"
    assert built.returncode == 0 and engine.is_file(), built.stdout[-2000:] + built.stderr[-2000:]
    graph = onnx.load(str(int8))
    name_in, name_out = graph.graph.input[0].name, graph.graph.output[0].name
    with TrtRunner(EngineFromBytes(BytesFromPath(str(engine)))) as runner:
        logits = np.concatenate([runner.infer({name_in: x[None]})[name_out] for x in images.batch])
    agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
    assert agreement >= 0.96, f"TensorRT INT8 engine agrees with PyTorch on {agreement:.1%}"


def test_real_coreml_structure(real, tmp_path):
    from caltech_edge.export.coreml import export_coreml
    from caltech_edge.export.verify_devices import verify_coreml

    source = real[0]
    path = export_coreml(source.model, source.card, tmp_path / "model.mlpackage")
    report = verify_coreml(path, against=source.model, images=real[1], reference=real[2])
    assert report.passed, report.summary()
    if report.kind == "structural":  # off macOS
        assert len(report.extra["found"]["labels"]) == 256
