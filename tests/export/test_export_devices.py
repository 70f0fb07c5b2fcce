"""The device formats (LiteRT, Edge TPU, ExecuTorch, Core ML, TensorRT-style QDQ ONNX) on a
tiny CNN trained for a few seconds on the synthetic JPEGs: every artifact is produced by the
real converter, run by the real interpreter (Core ML: inspected, predict needs macOS) and
compared with PyTorch by the export pipeline."""

from __future__ import annotations

import json
import logging
import shutil
import sys

import numpy as np
import pytest
import torch
from export_helpers import CLASSES

from caltech_edge.card import ModelCard
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.errors import ConfigError, ExportError

SIZE = 32


def _tiny_cnn() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, len(CLASSES)),
    )


@pytest.fixture(scope="module")
def tiny(synthetic_root):
    """(model, card): trained until it separates the 4 synthetic classes (clear top-1s make
    the INT8 agreement checks meaningful rather than a coin toss between equal logits)."""
    from caltech_edge.export.verify import load_images

    card = ModelCard(
        arch="tiny-cnn", class_names=CLASSES, preprocess=PreprocessSpec(image_size=SIZE)
    )
    images = load_images(card, data=synthetic_root, limit=None)
    x, y = torch.from_numpy(images.batch), torch.from_numpy(images.labels)
    torch.manual_seed(0)
    model = _tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    assert (model(x).argmax(1) == y).float().mean() > 0.9
    return model, card


def _export(tiny, synthetic_root, tmp_path, formats, **options):
    """``export`` of the tiny model; ``options``: per-row producer options (``--option``)."""
    from caltech_edge.export import export

    model, card = tiny
    return export(
        model, card=card, formats=formats, out=tmp_path, data=synthetic_root, verify_images=16,
        progress=False, options=options,
    )  # fmt: skip


def test_tflite_fp32_fp16_nhwc_with_card_and_labels_inside(tiny, synthetic_root, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from caltech_edge.export.tflite_metadata import read_tflite_card, read_tflite_metadata

    result = _export(tiny, synthetic_root, tmp_path, "tflite,tflite-fp16")
    fp32, fp16 = result.reports["tflite"], result.reports["tflite-fp16"]
    assert fp32.passed and fp32.max_abs_diff < 1e-4 and fp32.top1_agreement == 1.0
    assert fp16.passed and fp16.precision == "fp16" and fp16.top1_agreement == 1.0
    path = result.artifacts["tflite"]
    interpreter = Interpreter(str(path))
    assert tuple(interpreter.get_input_details()[0]["shape"]) == (1, SIZE, SIZE, 3)  # NHWC
    card = read_tflite_card(path)
    assert card.class_names == CLASSES and card.extra["input_layout"] == "NHWC"
    labels = read_tflite_metadata(path)["labels.txt"].decode().splitlines()
    assert labels == list(CLASSES)
    half = Interpreter(str(result.artifacts["tflite-fp16"]))
    dtypes = {d["dtype"] for d in half.get_tensor_details()}
    assert (
        np.float16 in dtypes
        and read_tflite_card(result.artifacts["tflite-fp16"]).precision == "fp16"
    )


def test_tflite_int8_full_integer_with_edgetpu_report(tiny, synthetic_root, tmp_path, caplog):
    from ai_edge_litert.interpreter import Interpreter

    from caltech_edge.export.tflite_metadata import read_tflite_card

    with caplog.at_level(logging.WARNING):
        result = _export(tiny, synthetic_root, tmp_path, "tflite-int8,edgetpu")
    # the PT2E graph is converted as an eval module (litert-torch warned once per recipe)
    assert not [r for r in caplog.records if "training mode" in r.getMessage()]
    report = result.reports["tflite-int8"]
    assert report.passed and report.top1_agreement >= 0.9, report.summary()
    path = result.artifacts["tflite-int8"]
    interpreter = Interpreter(str(path))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    float_tensors = [
        d["name"] for d in interpreter.get_tensor_details() if d["dtype"] == np.float32
    ]
    assert not float_tensors  # full integer
    from caltech_edge.export.tflite import INT8_RECIPES

    quant = read_tflite_card(path).extra["quantization"]
    full_integer = [name for name, opts in INT8_RECIPES if not opts.get("float_logits")]
    assert INT8_RECIPES[: len(full_integer)] == tuple(r for r in INT8_RECIPES
                                                      if r[0] in full_integer)  # fmt: skip
    assert quant["recipe"] in full_integer and quant["logits"] == "int8"
    assert 0.0 <= quant["agreement"] <= 1.0 and quant["recipes_tried"]
    tpu = json.loads((path.parent / "edgetpu_report.json").read_text())
    assert tpu["compiled"] is False and tpu["ops_total"] == tpu["ops_on_tpu"] > 0
    assert {"CONV_2D", "FULLY_CONNECTED"} <= set(tpu["by_op"])
    edgetpu = result.reports["edgetpu"]
    if shutil.which("edgetpu_compiler") is None:  # never claimed when not run
        assert edgetpu.kind == "not-run" and "edgetpu_compiler -s -o" in edgetpu.summary()
        plan = json.loads(result.artifacts["edgetpu"].read_text())
        assert plan["compiled"] is False and plan["command"].endswith("model.tflite")
        assert (result.artifacts["edgetpu"].parent / "compile_edgetpu.sh").is_file()
    else:  # pragma: no cover - only where Coral's compiler is installed
        assert edgetpu.kind == "structural"
    summary = json.loads(result.summary.read_text())
    assert summary["formats"]["edgetpu"]["verification"]["top1_agreement"] is None


def test_tflite_int8_float_logits_recipe_is_int8_in_float_out(tiny, synthetic_root, tmp_path):
    """The fallback recipe: the classifier's output is not rounded; the file says so, the
    runtime reads its float output, and the Edge TPU report puts only the tail on the CPU."""
    from ai_edge_litert.interpreter import Interpreter

    from caltech_edge.export.edgetpu import compatibility_report
    from caltech_edge.export.tflite import export_tflite_int8
    from caltech_edge.export.tflite_metadata import read_tflite_card
    from caltech_edge.export.verify import load_images, torch_predictor
    from caltech_edge.runtime.backends import open_runtime

    model, card = tiny
    calibration = _calibration(card, synthetic_root)
    path = export_tflite_int8(model, card, tmp_path / "model.tflite", calibration=calibration,
                              recipe="histogram-float-logits")  # fmt: skip
    interpreter = Interpreter(str(path))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.float32
    quant = read_tflite_card(path).extra["quantization"]
    assert quant["recipe"] == "histogram-float-logits" and quant["logits"] == "float"
    report = compatibility_report(path)
    cpu = [op["op"] for op in report["ops"] if op["placement"] == "cpu"]
    assert cpu and cpu[0] == "DEQUANTIZE" and report["ops_on_tpu"] > len(cpu)
    assert all(op["placement"] == "cpu" for op in report["ops"][report["first_cpu_op"]["index"] :])
    images = load_images(card, data=synthetic_root, limit=16)
    ours = open_runtime(path).infer
    got = np.concatenate([ours(images.batch[i : i + 1]) for i in range(len(images.batch))])
    want = torch_predictor(model)(images.batch)
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.9


def _calibration(card, root):
    import warnings

    from caltech_edge.data.calibration import CalibrationReader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a small synthetic set: below the recommended 100
        return CalibrationReader.from_dataset(root, spec=card.preprocess, calib_size=48)


def test_edgetpu_report_sends_float_ops_to_the_cpu(tiny, synthetic_root, tmp_path):
    from caltech_edge.export.edgetpu import compatibility_report
    from caltech_edge.export.tflite import export_tflite

    model, card = tiny
    path = export_tflite(model, card, tmp_path / "model.tflite")
    report = compatibility_report(path)
    assert report["ops_on_tpu"] == 0 and report["ops_on_cpu"] == report["ops_total"]
    assert "float32" in " ".join(report["first_cpu_op"]["problems"])


def test_tflite_int8_uint8_io_is_exact_and_selectable(tiny, synthetic_root, tmp_path):
    """uint8 I/O (Coral's classic interface): QUANTIZE ops at the edges, bit-exact with the
    int8 file, chosen with ``--option tflite-int8.io_type=uint8``; bad names are one line."""
    from ai_edge_litert.interpreter import Interpreter

    from caltech_edge.export.tflite import export_tflite_int8
    from caltech_edge.export.tflite_io import uint8_interface
    from caltech_edge.runtime import load_model

    model, card = tiny
    uint8 = {"io_type": "uint8", "recipe": "histogram"}
    result = _export(tiny, synthetic_root, tmp_path / "u8", "tflite-int8", **{"tflite-int8": uint8})
    report = result.reports["tflite-int8"]
    assert report.passed and report.top1_agreement >= 0.9, report.summary()
    path = result.artifacts["tflite-int8"]
    edges = Interpreter(str(path))
    assert edges.get_input_details()[0]["dtype"] == np.uint8
    assert edges.get_output_details()[0]["dtype"] == np.uint8
    assert "uint8" in json.dumps(load_model(path).card.extra["quantization"])
    tpu = json.loads((path.parent / "edgetpu_report.json").read_text())
    assert tpu["ops_total"] == tpu["ops_on_tpu"] and "QUANTIZE" in tpu["by_op"]
    # exactness: one int8 file, and the same bytes with uint8 edges, on random inputs
    from caltech_edge.data.calibration import calibration_reader
    from caltech_edge.export.tflite import quantize_tflite

    calib = calibration_reader(synthetic_root, spec=card.preprocess, batch_size=1)
    plain = quantize_tflite(model, card, tmp_path / "i8" / "m.tflite", calibration=calib)
    int8 = Interpreter(model_content=plain.read_bytes())
    u8 = Interpreter(model_content=uint8_interface(plain.read_bytes()))
    int8.allocate_tensors()
    u8.allocate_tensors()
    inp, out = u8.get_input_details()[0], u8.get_output_details()[0]
    i8_in, i8_out = int8.get_input_details()[0], int8.get_output_details()[0]
    assert inp["dtype"] == np.uint8 and i8_in["dtype"] == np.int8
    assert inp["quantization"] == (i8_in["quantization"][0], i8_in["quantization"][1] + 128)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.integers(0, 256, size=inp["shape"], dtype=np.uint8)
        u8.set_tensor(inp["index"], x)
        int8.set_tensor(i8_in["index"], (x.astype(np.int16) - 128).astype(np.int8))
        u8.invoke()
        int8.invoke()
        got = u8.get_tensor(out["index"]).astype(np.int16) - 128
        np.testing.assert_array_equal(got, int8.get_tensor(i8_out["index"]))
    with pytest.raises(ConfigError, match="io_type must be one of"):
        export_tflite_int8(model, card, tmp_path / "m.tflite", calibration=None, io_type="u4")
    with pytest.raises(ConfigError, match=r"has no option 'io_tpe'; .*io_type"):  # a typo
        _export(tiny, synthetic_root, tmp_path / "typo", "tflite-int8",
                **{"tflite-int8": {"io_tpe": "uint8"}})  # fmt: skip
    with pytest.raises(ExportError, match="no int8 input or output"):
        uint8_interface(path.read_bytes())


def test_executorch_fp32_and_int8(tiny, synthetic_root, tmp_path):
    result = _export(tiny, synthetic_root, tmp_path, "executorch,executorch-int8")
    fp32, int8 = result.reports["executorch"], result.reports["executorch-int8"]
    assert fp32.passed and fp32.max_abs_diff < 1e-4 and fp32.backend == "executorch"
    assert int8.passed and int8.precision == "int8" and int8.top1_agreement >= 0.9
    card = json.loads((result.artifacts["executorch-int8"].parent / "model.card.json").read_text())
    assert card["extra"]["delegate"] == "xnnpack"
    quant = card["extra"]["quantization"]
    assert quant["backend"] == "executorch-xnnpack-pt2e"
    assert quant["recipe"] == "histogram-float-logits" and quant["logits"] == "float"
    assert (
        result.artifacts["executorch-int8"].stat().st_size
        < result.artifacts["executorch"].stat().st_size
    )


def test_onnx_trt_int8_is_symmetric_qdq_with_trtexec(tiny, synthetic_root, tmp_path):
    import onnx
    from onnx import numpy_helper

    result = _export(tiny, synthetic_root, tmp_path, "onnx-trt-int8")
    report = result.reports["onnx-trt-int8"]
    assert report.passed and report.top1_agreement >= 0.9 and report.backend == "onnxruntime"
    path = result.artifacts["onnx-trt-int8"]
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    zero_points = [inits[n.input[2]] for n in qdq if len(n.input) > 2]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    weight_dq = [n for n in qdq if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert weight_dq and all(inits[n.input[0]].dtype == np.int8 for n in weight_dq)
    assert any(inits[n.input[1]].size > 1 for n in weight_dq)  # per-channel scales
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert inits[conv.input[2]].dtype == np.float32  # TensorRT wants float biases
    meta = {p.key: p.value for p in model.metadata_props}
    assert (
        "trtexec --onnx=model.onnx --int8"
        in json.loads(meta["caltech_edge.card"])["extra"]["trtexec"]
    )
    assert "--saveEngine=model.engine" in (path.parent / "trtexec.sh").read_text()


def test_coreml_structure_matches_the_card(tiny, synthetic_root, tmp_path):
    from caltech_edge.export.coreml import coreml_structure, structure_problems

    result = _export(tiny, synthetic_root, tmp_path, "coreml")
    report = result.reports["coreml"]
    path = result.artifacts["coreml"]
    assert path.name == "model.mlpackage" and path.is_dir()
    if sys.platform != "darwin":
        assert report.kind == "structural" and report.passed
        assert "needs macOS" in report.summary()
    found = coreml_structure(path)
    assert found["labels"] == list(CLASSES) and found["inputs"] == ["image"]
    assert found["input_size"] == [SIZE, SIZE] and found["color_layout"] == "RGB"
    assert found["scale"] == pytest.approx(1 / 255, rel=1e-5)
    assert found["bias"] == pytest.approx([-0.485, -0.456, -0.406], abs=1e-5)
    _, card = tiny
    other = card.replace(preprocess=PreprocessSpec(image_size=SIZE, mean=(0.5, 0.5, 0.5)))
    assert any("bias" in p for p in structure_problems(found, other))


@pytest.mark.skipif(sys.platform != "darwin", reason="needs macOS (Core ML predict)")
def test_coreml_numeric_on_macos(tiny, synthetic_root, tmp_path):  # pragma: no cover
    result = _export(tiny, synthetic_root, tmp_path, "coreml")
    report = result.reports["coreml"]
    assert report.kind == "numeric" and report.top1_agreement >= 0.97


def test_model_rows_refuse_a_gluon_source_and_dynamic_batch(tiny, tmp_path):
    from caltech_edge.export.formats import FORMATS
    from caltech_edge.export.pipeline import ExportSource, _produce

    card = ModelCard(arch="x", class_names=CLASSES)
    src = ExportSource(card=card, description="gluon run r", native=tmp_path, framework="gluon")
    with pytest.raises(ExportError, match="made from a torch model"):
        _produce(FORMATS["tflite"], src, tmp_path / "m.tflite", {}, opset=13,
                 dynamic_batch=False, data=None)  # fmt: skip
    model, card = tiny
    torch_src = ExportSource(card=card, description="torch tiny", model=model)
    for name in ("tflite", "executorch", "coreml"):
        with pytest.raises(ConfigError, match="static batch of 1"):
            _produce(FORMATS[name], torch_src, tmp_path / FORMATS[name].artifact, {},
                     opset=13, dynamic_batch=True, data=None)  # fmt: skip


def test_compiler_log_is_parsed():
    from caltech_edge.export.verify_devices import compiler_mapping

    log = """Operator                       Count      Status
CONV_2D                        26         Mapped to Edge TPU
CONCATENATION                  8          Mapped to Edge TPU
MEAN                           1          Operation is working on an unsupported data type
QUANTIZE                       1          More than one subgraph is not supported
"""
    assert compiler_mapping(log) == {"ops_on_tpu": 34, "ops_on_cpu": 2}


def test_cli_exports_device_formats(tmp_path, synthetic_root, capsys):
    from export_helpers import make_checkpoint

    from caltech_edge.cli import main

    ckpt, classes = make_checkpoint(tmp_path / "ckpt", "squeezenet1_1")
    out = tmp_path / "out"
    argv = ["export", "--checkpoint", str(ckpt), "--arch", "squeezenet1_1", "--classes"]
    argv += [str(classes), "--image-size", "64", "--to", "tflite,onnx-trt-int8", "--out"]
    argv += [str(out), "--data", str(synthetic_root), "--images", "8", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "PASS" in printed and "model.tflite" in printed and "onnx-trt-int8" in printed
    summary = json.loads((out / "export.json").read_text())
    assert summary["formats"]["tflite"]["backend"] == "litert"
    assert summary["formats"]["tflite"]["verification"]["passed"] is True
    trt = summary["formats"]["onnx-trt-int8"]
    assert trt["precision"] == "int8" and "onnx-trt-int8/trtexec.sh" in trt["files"]
