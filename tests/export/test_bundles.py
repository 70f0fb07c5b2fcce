"""Device bundles (caltech-edge package --target rpi|coral|jetson|coreml).

The rpi and jetson bundles are installed into clean virtual environments (python -m venv +
pip install -r requirements.txt, as install.sh does on the device) and their start
scripts run the bundled runtime on real Caltech-256 JPEGs, publishing to a real Mosquitto.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from devices_helpers import build_device_exports, export_tflite, tiny_net
from runtime_helpers import (
    Broker,
    Subscriber,
    need_mosquitto,
    run_cli,
    shared_sample_images,
)

from caltech_edge.card import ModelCard
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.errors import ExportError
from caltech_edge.export.bundles import TARGETS, package_target

CLASSES = ("001.red", "002.green", "003.blue")
CARD = ModelCard(arch="tiny", class_names=CLASSES, preprocess=PreprocessSpec(image_size=32),
                 name="tiny-bundle")  # fmt: skip


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundle_export")
    build_device_exports(root, CARD)
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """A folder of real Caltech-256 JPEGs (generated ones without the shared data)."""
    folder = tmp_path_factory.mktemp("jpegs")
    paths = shared_sample_images(4)
    for i, p in enumerate(paths):
        shutil.copyfile(p, folder / f"{i}.jpg")
    if not paths:
        rng = np.random.default_rng(0)
        for i in range(4):
            cv2.imwrite(str(folder / f"{i}.jpg"), rng.integers(0, 255, (90, 120, 3), np.uint8))
    return folder


def _bundle(export_dir: Path, target: str, out: Path) -> dict:
    proc = run_cli("package", str(export_dir), "--target", target, "--out", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_rpi_bundle_layout(export_dir, tmp_path):
    result = _bundle(export_dir, "rpi", tmp_path / "rpi")
    out = Path(result["bundle"])
    manifest = json.loads((out / "bundle.json").read_text())
    assert manifest["default_model"] == "models/tflite-int8/model.tflite"
    formats = [m["format"] for m in manifest["models"]]
    assert formats == ["tflite-int8", "tflite", "onnx", "executorch-int8", "executorch"]
    assert all(m["check"]["check"] == "ran" for m in manifest["models"])
    assert manifest["models"][0]["check"]["input_dtype"] == "int8"
    reqs = (out / "requirements.txt").read_text().split()
    assert "ai-edge-litert==2.3.0" in reqs and all("==" in r for r in reqs)
    assert not any(r.startswith(("torch", "executorch")) for r in reqs)  # only the default backend
    assert "executorch==1.5.1" in (out / "requirements-executorch.txt").read_text()
    unit = (out / "caltech-edge.service").read_text()
    assert "ExecStart=/opt/caltech-edge/start.sh" in unit and "[Install]" in unit
    env = (out / "device.env").read_text()
    assert "BACKEND:=litert" in env and "MQTT_HOST" in env
    assert "infer" in (out / "start.sh").read_text() and os.access(out / "start.sh", os.X_OK)
    for py in (out / "runtime").rglob("*.py"):  # the device source imports nothing heavy
        for node in ast.parse(py.read_text()).body:
            if isinstance(node, ast.ImportFrom | ast.Import):
                mods = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                assert not any(m.split(".")[0] in ("torch", "mxnet", "tensorflow") for m in mods), (
                    py
                )
    import hashlib

    tfl = out / "models" / "tflite-int8" / "model.tflite"
    assert manifest["models"][0]["sha256"] == hashlib.sha256(tfl.read_bytes()).hexdigest()
    assert "Raspberry Pi" in (out / "README.md").read_text()


def _install(bundle: Path) -> None:
    """install.sh: python -m venv + pip install -r requirements.txt (pip's own index/cache)."""
    proc = subprocess.run(["sh", str(bundle / "install.sh")], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "PYTHON": sys.executable})  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    pip = subprocess.run([str(bundle / "venv" / "bin" / "python"), "-m", "pip", "list"],
                         capture_output=True, text=True)  # fmt: skip
    installed = {line.split()[0].lower() for line in pip.stdout.splitlines()[2:] if line.strip()}
    assert "torch" not in installed and "caltech-edge" not in installed, installed


def _start(bundle: Path, images: Path, env: dict, *args: str) -> list[dict]:
    proc = subprocess.run(
        ["sh", str(bundle / "start.sh"), "--json", "--max-frames", "4", *args],
        capture_output=True, text=True, timeout=300,
        env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "SOURCE": str(images),
             "BUFFER_DIR": str(bundle / "state"), "DEVICE": "cam-1", "THREADS": "1", **env},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_rpi_bundle_runs_in_a_clean_venv_and_publishes_mqtt(export_dir, images, tmp_path):
    need_mosquitto()
    out = Path(_bundle(export_dir, "rpi", tmp_path / "rpi")["bundle"])
    _install(out)
    broker = Broker(tmp_path).start()
    sub = Subscriber(broker.port, "$aws/things/cam-1/infer")
    try:
        payloads = _start(out, images, {"MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker.port)})
        assert len(payloads) == 4
        assert all(p["model"]["backend"] == "litert" and p["device"] == "cam-1" for p in payloads)
        assert {p["predictions"][0]["label"] for p in payloads} <= set(CLASSES)
        assert sub.wait_for({1, 2, 3, 4}) >= {1, 2, 3, 4}
    finally:
        sub.close()
        broker.stop()


@pytest.mark.slow
def test_jetson_bundle_onnx_path_runs_in_a_clean_venv(export_dir, images, tmp_path):
    result = _bundle(export_dir, "jetson", tmp_path / "jetson")
    out = Path(result["bundle"])
    assert result["models"] == ["models/onnx/model.onnx"]  # no onnx-trt-int8 in this export
    script = (out / "build_engines.sh").read_text()
    assert "--onnx=models/onnx/model.onnx --fp16 --saveEngine=models/onnx/model.engine" in script
    assert "onnxruntime==1.32.0" in (out / "requirements.txt").read_text().split()
    _install(out)
    payloads = _start(out, images, {})
    assert len(payloads) == 4 and all(p["model"]["backend"] == "onnxruntime" for p in payloads)


def test_coral_bundle_carries_the_exact_compiler_command(export_dir, tmp_path):
    result = _bundle(export_dir, "coral", tmp_path / "coral")
    out = Path(result["bundle"])
    cmd = "edgetpu_compiler --show_operations --out_dir models/edgetpu models/tflite-int8/model.tflite"
    assert result["edgetpu_compiler_command"] == cmd
    assert cmd in (out / "compile_edgetpu.sh").read_text()
    if shutil.which("edgetpu_compiler") is None:
        assert "not on PATH" in result["edgetpu_compiler"]
    assert "plugdev" in (out / "caltech-edge.service").read_text()
    assert "NOT measured here" in (out / "README.md").read_text()


def test_coral_refuses_a_float_model(tmp_path):
    root = tmp_path / "export"
    export_tflite(tiny_net(), CARD, root / "tflite-int8" / "model.tflite")  # float, misnamed
    CARD.save(root / "card.json")
    with pytest.raises(ExportError, match="full-integer"):
        package_target(root, target="coral", out=tmp_path / "coral")


def test_coreml_bundle_is_checked_structurally(export_dir, tmp_path):
    result = _bundle(export_dir, "coreml", tmp_path / "coreml")
    out = Path(result["bundle"])
    manifest = json.loads((out / "bundle.json").read_text())
    expected = "ran" if sys.platform == "darwin" else "structural"
    assert manifest["models"][0]["check"]["check"] == expected
    assert (out / "models" / "coreml" / "model.mlpackage").is_dir()
    assert "coremltools==9.0" in (out / "requirements.txt").read_text()
    assert not (out / "caltech-edge.service").exists()
    assert "MLModel" in (out / "README.md").read_text()


def test_broken_model_is_not_packaged(export_dir, tmp_path):
    root = tmp_path / "export"
    shutil.copytree(export_dir, root, ignore=shutil.ignore_patterns("coreml", "executorch*"))
    (root / "tflite-int8" / "model.tflite").write_bytes(b"TFL3" * 8)
    with pytest.raises(ExportError, match="not packaged"):
        package_target(root, target="rpi", out=tmp_path / "rpi")
    assert not (tmp_path / "rpi" / "bundle.json").exists()


def test_unknown_target_and_missing_models_are_one_line(export_dir, tmp_path):
    proc = run_cli("package", str(export_dir), "--target", "rpy", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "rpi" in proc.stderr and proc.stderr.count("\n") == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("package", str(empty), "--target", "jetson", "--out", str(tmp_path / "y"))
    assert proc.returncode == 2 and "no model for jetson" in proc.stderr
    assert set(TARGETS.names()) == {"deeplens", "rpi", "coral", "jetson", "coreml"}
