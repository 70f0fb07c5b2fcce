"""The device backends (LiteRT, ExecuTorch, Core ML) behind load_model(path).predict().

Real converters make the files (litert-torch, ExecuTorch's XNNPACK lowering, coremltools)
and the real interpreters run them; outputs are compared with the torch module they came
from on the same preprocessed input.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from devices_helpers import (
    build_device_exports,
    embed_tflite_metadata,
    export_tflite,
    tiny_net,
)
from runtime_helpers import run_cli, shared_sample_images

from caltech_edge.card import ModelCard, sidecar_path
from caltech_edge.data.transforms import PreprocessSpec, normalize, preprocess
from caltech_edge.errors import BackendError, CaltechEdgeError
from caltech_edge.runtime import load_model
from caltech_edge.runtime.backends import backend_for

CLASSES = ("001.red", "002.green", "003.blue")
CARD = ModelCard(arch="tiny", class_names=CLASSES, preprocess=PreprocessSpec(image_size=32),
                 name="tiny-devices", version="2")  # fmt: skip


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("device_exports")
    paths = build_device_exports(root, CARD)
    return {"root": root, **paths}


def _frames(n: int) -> list[np.ndarray]:
    paths = shared_sample_images(n)
    if paths:
        return [cv2.imread(str(p)) for p in paths]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (60, 80, 3), dtype=np.uint8) for _ in range(n)]


def _reference(frames) -> tuple[np.ndarray, np.ndarray]:
    import torch

    x = np.stack([preprocess(f, CARD.preprocess, input_order="BGR") for f in frames])
    with torch.no_grad():
        return x, tiny_net(len(CLASSES))(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize(
    "fmt,backend,atol",
    [("tflite", "litert", 1e-4), ("executorch", "executorch", 1e-4),
     ("tflite-int8", "litert", None), ("executorch-int8", "executorch", None)],
)  # fmt: skip
def test_backend_matches_torch_on_real_frames(exports, fmt, backend, atol):
    frames = _frames(6)
    x, ref = _reference(frames)
    model = load_model(exports[fmt])
    assert backend_for(exports[fmt]) == backend and model.backend == backend
    assert model.card.class_names == CLASSES and model.card.name == "tiny-devices"
    logits = model.runtime.infer(x)
    assert logits.shape == ref.shape and logits.dtype == np.float32
    if atol is not None:
        np.testing.assert_allclose(logits, ref, atol=atol, rtol=1e-4)
    else:  # INT8: same ranking, values within a few quantization steps of the output range
        span = float(ref.max() - ref.min())
        assert np.abs(logits - ref).max() < 0.1 * span, (logits, ref)
    out = model.predict(frames[0], top_k=2)
    assert [p["label"] for p in out["predictions"]][:1] == [CLASSES[int(np.argmax(ref[0]))]] or (
        atol is None  # an INT8 near-tie may flip; the ranking check above bounds the error
    )
    assert out["model"]["backend"] == backend and len(out["predictions"]) == 2
    json.dumps(out)  # JSON-ready
    batch = model.predict_batch(frames[:3], top_k=1)
    assert [b["predictions"][0]["index"] for b in batch] == list(np.argmax(logits[:3], axis=1))


def test_litert_nhwc_and_int8_io_use_the_tensors_own_parameters(exports):
    fp32 = load_model(exports["tflite"]).runtime
    int8 = load_model(exports["tflite-int8"]).runtime
    assert fp32.layout == "NHWC" and int8.layout == "NHWC"
    detail = int8.interpreter.get_input_details()[0]
    assert np.dtype(detail["dtype"]) == np.int8
    scale, zero = detail["quantization"]
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    q = int8.to_input(x)
    assert q.dtype == np.int8 and q.shape == (1, 32, 32, 3)
    expected = np.clip(np.rint(x.transpose(0, 2, 3, 1) / scale) + zero, -128, 127)
    np.testing.assert_array_equal(q, expected.astype(np.int8))
    out_detail = int8.interpreter.get_output_details()[0]
    assert np.dtype(out_detail["dtype"]) == np.int8  # dequantized by from_output
    raw = np.array([[0, 10, -10]], np.int8)
    o_scale, o_zero = out_detail["quantization"]
    np.testing.assert_allclose(int8.from_output(raw), (raw.astype(np.float32) - o_zero) * o_scale)


def test_litert_int8_frames_skip_the_float_tensor_with_the_same_codes(exports):
    """A full-integer file takes uint8 crops through a table built by the float path."""
    int8, fp32 = load_model(exports["tflite-int8"]), load_model(exports["tflite"])
    assert int8.takes_pixels and not fp32.takes_pixels
    # every value 0..255 in every channel (3 is coprime to 256)
    crop = (np.arange(32 * 32 * 3) % 256).astype(np.uint8).reshape(1, 32, 32, 3)
    logits = int8.runtime.infer_pixels(crop)
    index = int8.runtime.interpreter.get_input_details()[0]["index"]
    codes = int8.runtime.interpreter.get_tensor(index)
    x = normalize(crop[0], CARD.preprocess)[None]
    np.testing.assert_array_equal(codes, int8.runtime.to_input(x))  # code for code
    np.testing.assert_array_equal(logits, int8.runtime.infer(x))
    # the benchmark times this row from the crop, recovered exactly from the float tensor
    from caltech_edge.benchmark import _frame_input

    np.testing.assert_array_equal(_frame_input(int8, x[0], int8.card), crop[0])
    chw = x[0]
    assert _frame_input(fp32, chw, fp32.card) is chw
    assert _frame_input(int8, chw, int8.card).flags["C_CONTIGUOUS"]
    frames = _frames(4)
    crops = np.stack([int8.preprocess(f) for f in frames])
    assert crops.dtype == np.uint8 and crops.shape == (4, 32, 32, 3)
    floats = np.stack([preprocess(f, CARD.preprocess, input_order="BGR") for f in frames])
    np.testing.assert_array_equal(int8.logits(crops), int8.runtime.infer(floats))
    # either input form works with either model (a hot swap may hand over the other one)
    np.testing.assert_array_equal(fp32.logits(crops), fp32.runtime.infer(floats))
    np.testing.assert_array_equal(int8.logits(floats), int8.runtime.infer(floats))
    assert (
        int8.predict_tensor(crops[0], top_k=1)["predictions"]
        == int8.predict(frames[0], top_k=1)["predictions"]
    )
    with pytest.raises(BackendError, match=r"infer_pixels takes .* uint8 RGB crops"):
        fp32.runtime.infer_pixels(crops)


def test_litert_uses_every_usable_core_unless_told(exports):
    """LiteRT's own default is one thread; ours is the process's affinity mask."""
    import os

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("the affinity mask is Linux's (os.sched_getaffinity)")
    assert load_model(exports["tflite"]).runtime.threads == len(os.sched_getaffinity(0))
    assert load_model(exports["tflite"], threads=1).runtime.threads == 1
    pinned = (
        "import os, sys; os.sched_setaffinity(0, {0}); "
        "from caltech_edge.runtime import load_model; "
        "print(load_model(sys.argv[1]).runtime.threads)"
    )
    out = subprocess.run([sys.executable, "-c", pinned, str(exports["tflite"])],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == "1"


def test_litert_card_sidecar_fallback_and_missing_card(tmp_path):
    path = export_tflite(tiny_net(), CARD, tmp_path / "m" / "model.tflite", embed=False)
    assert sidecar_path(path).is_file()
    assert load_model(path).card.class_names == CLASSES
    sidecar_path(path).unlink()
    with pytest.raises(CaltechEdgeError, match="no model card inside the TFLite metadata"):
        load_model(path)
    embed_tflite_metadata(path, {"caltech_edge_card": CARD.to_json().encode()})
    assert load_model(path).card.name == "tiny-devices"  # the alternative metadata name


def test_litert_refuses_edgetpu_model_without_the_library(exports, tmp_path, monkeypatch):
    """A model compiled by edgetpu_compiler (custom op) and no libedgetpu: one-line error."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(exports["tflite-int8"].read_bytes(), 0)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = "edgetpu-custom-op"
    model.operatorCodes.append(code)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "model_edgetpu.tflite"
    path.write_bytes(bytes(builder.Output()))
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(BackendError, match=r"compiled for the Edge TPU but libedgetpu\.so\.1"):
        load_model(path)
    gc.collect()
    assert not unraisable  # no half-built ai_edge_litert Delegate complaining in __del__


def test_not_a_tflite_file_is_one_line(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(BackendError, match="not a TFLite model") as info:
        load_model(bad)
    assert "\n" not in str(info.value)


def test_coreml_off_macos_is_one_clear_line_and_card_reads_structurally(exports):
    from caltech_edge.runtime.backends.coreml import coreml_card

    path = exports["coreml"]
    assert backend_for(path) == "coreml" and path.is_dir()
    assert coreml_card(path).class_names == CLASSES
    if sys.platform == "darwin":
        pytest.skip("on macOS the Core ML model runs: see test_coreml_predicts_on_macos")
    proc = run_cli("infer", "--model", str(path), "--source", str(path), "--max-frames", "1")
    assert proc.returncode == 2 and "run only on macOS" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr


@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML predicts only on macOS")
def test_coreml_predicts_on_macos(exports):  # pragma: no cover - no macOS here
    frames = _frames(4)
    x, ref = _reference(frames)
    probs = load_model(exports["coreml"]).runtime.infer(x)
    assert (np.argmax(probs, 1) == np.argmax(ref, 1)).mean() >= 0.75


def test_litert_imports_and_predicts_with_torch_blocked(exports, tmp_path):
    frames = shared_sample_images(2)
    img = str(frames[0]) if frames else ""
    code = (
        "import sys\nfor m in ('torch', 'torchvision', 'mxnet', 'onnx', 'executorch'):\n"
        "    sys.modules[m] = None\n"
        "import cv2, numpy as np\n"
        "from caltech_edge.runtime import load_model\n"
        "frame = cv2.imread({img!r}) if {img!r} else np.full((60, 80, 3), 128, np.uint8)\n"
        "for p in ({a!r}, {b!r}):\n"
        "    out = load_model(p).predict(frame, top_k=3)\n"
        "    assert out['model']['backend'] == 'litert' and len(out['predictions']) == 3\n"
        "bad = [k for k in ('torch', 'torchvision') if sys.modules.get(k) is not None]\n"
        "assert not bad, bad\nprint('ok')\n"
    ).format(img=img, a=str(exports["tflite"]), b=str(exports["tflite-int8"]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


@pytest.mark.parametrize("fmt", ["tflite-int8", "executorch"])
def test_cli_infer_on_real_jpegs(exports, fmt, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    paths = shared_sample_images(3)
    for i, frame in enumerate(_frames(3) if not paths else [cv2.imread(str(p)) for p in paths]):
        cv2.imwrite(str(images / f"{i}.jpg"), frame)
    proc = run_cli("infer", "--model", str(exports[fmt]), "--source", str(images), "--json",
                   "--buffer-dir", str(tmp_path / "state"), "--threads", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    payloads = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(payloads) == 3
    assert all(p["model"]["backend"] == ("litert" if "tflite" in fmt else "executorch")
               for p in payloads)  # fmt: skip
    assert {p["predictions"][0]["label"] for p in payloads} <= set(CLASSES)


def test_serve_takes_a_tflite_model(exports):
    import http.client
    import threading

    from caltech_edge.runtime.serve import make_server

    srv = make_server(load_model(exports["tflite"]), port=0, max_bytes=2_000_000)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        body = cv2.imencode(".jpg", _frames(1)[0])[1].tobytes()
        conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "image/jpeg"})
        resp = conn.getresponse()
        data = json.loads(resp.read())
        assert resp.status == 200, data
        assert data["model"]["backend"] == "litert" and data["predictions"][0]["label"] in CLASSES
    finally:
        srv.shutdown()
        srv.server_close()


def test_benchmark_rows_with_each_formats_raw_interpreter(exports):
    """caltech-edge benchmark times every device row next to its framework's bare call."""
    from caltech_edge.benchmark import RAW_ORT, benchmark

    result = benchmark(exports["root"], formats=["onnx", "tflite-int8", "executorch"],
                       iters=5, warmup=1, threads=1)  # fmt: skip
    rows = {r["format"]: r for r in result.table_rows()}
    assert result.raw == {
        "onnx": RAW_ORT,  # the bare ONNX session is already the onnxruntime baseline
        "tflite-int8": "tflite-int8 raw litert",
        "executorch": "executorch raw executorch",
    }
    # each vs_raw / infer_vs_raw from the row, its backend call and its bare call timed alone
    assert set(result.steady) == set(result.steady_infer) == set(result.raw)
    for fmt, raw in result.raw.items():
        assert rows[fmt]["vs_raw"] == result.steady[fmt] and 0.05 < result.steady[fmt] < 20
        assert rows[fmt]["infer_vs_raw"] == result.steady_infer[fmt]
        assert 0.05 < result.steady_infer[fmt] < 20
        assert rows[raw]["vs_raw"] is None and rows[raw]["infer_vs_raw"] is None
        assert rows[fmt]["size_mb"] > 0
    assert rows["tflite-int8"]["backend"] == "litert" and rows["tflite-int8"]["precision"] == "int8"
    # the bare call runs on the interpreter our runtime loaded: the same output, code for code
    from caltech_edge.runtime.backends.litert import raw_call

    runtime = load_model(exports["tflite-int8"]).runtime
    probe = np.random.default_rng(2).standard_normal((1, 3, 32, 32)).astype(np.float32)
    bare = raw_call(exports["tflite-int8"], probe, 1, loaded=runtime)
    np.testing.assert_array_equal(runtime.from_output(bare()), runtime.infer(probe))
    assert "infer_vs_raw" in result.markdown() and "| tflite-int8 raw litert |" in result.markdown()


def test_benchmark_skips_what_does_not_run_here_and_says_why(exports, tmp_path):
    """Core ML off macOS and an uncompiled Edge TPU model are rows of the export, not of
    this machine's table: the benchmark names them and why instead of failing."""
    import shutil

    from caltech_edge.benchmark import benchmark

    root = tmp_path / "export"
    shutil.copytree(exports["root"], root)
    meta = json.loads((root / "export.json").read_text())
    (root / "edgetpu").mkdir()
    (root / "edgetpu" / "edgetpu_compile.json").write_text("{}")
    meta["formats"] = {
        "onnx": meta["formats"]["onnx"],
        "coreml": meta["formats"]["coreml"],
        "edgetpu": {
            "artifact": "edgetpu/edgetpu_compile.json", "backend": "litert", "precision": "int8",
            "verification": {"images": 0, "extra": {"note": "not compiled: no edgetpu_compiler"}},
        },
    }  # fmt: skip
    (root / "export.json").write_text(json.dumps(meta))
    result = benchmark(root, iters=3, warmup=1, threads=1, baselines=False)
    assert [r.format for r in result.rows] == ["onnx"]
    assert result.skipped["edgetpu"] == "not compiled: no edgetpu_compiler"
    assert set(result.skipped) == {"edgetpu", "coreml"} or sys.platform == "darwin"
    assert "Not timed here: edgetpu (not compiled: no edgetpu_compiler)." in result.markdown()
    assert result.to_dict()["not_timed"] == result.skipped
