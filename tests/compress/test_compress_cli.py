"""``caltech-edge quantize`` (both back ends), ``prune`` and ``compress report`` end to end."""

from __future__ import annotations

import json
import shutil

import pytest

from caltech_edge.cli import main


@pytest.fixture(scope="module")
def export_dir(tiny_exports, tmp_path_factory):
    """The layout ``caltech-edge export`` writes: OUT/onnx/model.onnx, OUT/openvino/model.xml."""
    out = tmp_path_factory.mktemp("cli-export")
    shutil.copytree(tiny_exports["dir"], out, dirs_exist_ok=True)
    return out


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_cli_quantize_writes_a_verified_int8_artifact(
    backend, export_dir, synthetic_root, tmp_path, capsys
):
    out = tmp_path / backend
    code = main([
        "quantize", str(export_dir), "--backend", backend, "--calib-data", str(synthetic_root),
        "--calib-size", "40", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    artifact = out / ("model.onnx" if backend == "onnxruntime" else "model.xml")
    assert result["artifact"] == str(artifact) and artifact.is_file()
    assert result["verify"]["passed"] and result["verify"]["precision"] == "int8"
    assert json.loads((out / "verify.json").read_text())["top1_agreement"] >= 0.9
    assert json.loads((out / "model.card.json").read_text())["precision"] == "int8"


def test_cli_quantize_errors_are_one_line(export_dir, synthetic_root, tmp_path, capsys):
    code = main([
        "quantize", str(export_dir / "onnx" / "model.onnx"), "--backend", "onnxruntime",
        "--calib-data", str(synthetic_root), "--max-drop", "0.01", "--out", str(tmp_path),
    ])  # fmt: skip
    assert code == 2
    assert "max_drop" in capsys.readouterr().err
    code = main([
        "quantize", str(tmp_path), "--backend", "openvino", "--calib-data", str(synthetic_root),
        "--out", str(tmp_path / "o"),
    ])  # fmt: skip
    assert code == 2 and "export the model first" in capsys.readouterr().err
