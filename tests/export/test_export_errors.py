"""Bad input gets a typed error naming the file and the valid choices, from API and CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import make_checkpoint

from caltech_edge.cli import main
from caltech_edge.errors import (
    CheckpointError,
    ConfigError,
    ExportError,
    UnknownNameError,
)
from caltech_edge.export import export
from caltech_edge.export.formats import get_format, parse_formats
from caltech_edge.export.pipeline import load_checkpoint_source


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> tuple[Path, Path]:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"), "squeezenet1_1")


def test_corrupt_and_missing_checkpoints(tmp_path: Path, ckpt) -> None:
    _, classes = ckpt
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"PK\x03\x04 this is not a torch zip archive" * 10)
    with pytest.raises(CheckpointError, match=r"broken\.pth.*state dict"):
        load_checkpoint_source(bad, "squeezenet1_1", classes)
    with pytest.raises(CheckpointError, match=r"nothere\.pth.*not found"):
        load_checkpoint_source(tmp_path / "nothere.pth", "squeezenet1_1", classes)


def test_wrong_architecture_and_class_count(tmp_path: Path, ckpt) -> None:
    path, classes = ckpt
    with pytest.raises(CheckpointError, match=r"squeezenet1_1\.pth: does not fit resnet18") as e:
        load_checkpoint_source(path, "resnet18", classes)
    assert "missing" in str(e.value) and "unexpected" in str(e.value) and len(str(e.value)) < 600
    three = tmp_path / "three.txt"
    three.write_text("a\nb\nc\n")
    with pytest.raises(CheckpointError, match=r"4, 512, 1, 1\) vs \(3, 512, 1, 1\)"):
        load_checkpoint_source(path, "squeezenet1_1", three)
    with pytest.raises(UnknownNameError, match="Did you mean 'squeezenet1_1'"):
        load_checkpoint_source(path, "squeezenet1_0", classes)


def test_unknown_format_and_bad_opset(ckpt, tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"'openvno'. Did you mean 'openvino'\?.*mxnet"):
        parse_formats("onnx,openvno")
    with pytest.raises(UnknownNameError, match="onnx-int8"):
        get_format("onnx_int8")
    with pytest.raises(ConfigError, match=r"unsupported ONNX opset 30.*9\.\.\d+"):
        export((ckpt[0], "squeezenet1_1", ckpt[1]), formats="onnx", out=tmp_path, opset=30)
    assert not (tmp_path / "onnx").exists()  # validated before any work


def test_not_a_run_and_int8_without_data(tmp_path: Path, ckpt) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="not a caltech-edge run directory"):
        export(tmp_path / "empty", formats="onnx", out=tmp_path / "o")
    src = load_checkpoint_source(ckpt[0], "squeezenet1_1", ckpt[1], image_size=32)
    with pytest.raises(ExportError, match="needs calibration images: pass --data"):
        export(src, formats="onnx-int8", out=tmp_path / "o2", verify=False)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--to", "onnx,mxnt"], "Did you mean 'mxnet'"),
        (["--opset", "99"], "unsupported ONNX opset 99"),
        (["--arch", "resnet18"], "--arch/--classes describe a --checkpoint"),
        ([], "nothing to export"),
    ],
)
def test_cli_errors_exit_2_with_a_message(argv, message, tmp_path, capsys) -> None:
    assert main(["export", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("caltech-edge export: error:") and message in err


def test_cli_checkpoint_errors_name_the_file(tmp_path, ckpt, capsys) -> None:
    bad = tmp_path / "model.pth"
    bad.write_text("garbage")
    argv = ["export", "--checkpoint", str(bad), "--arch", "squeezenet1_1", "--classes"]
    assert main([*argv, str(ckpt[1]), "--out", str(tmp_path / "o")]) == 2
    assert str(bad) in capsys.readouterr().err


@pytest.mark.parametrize(
    "option, message",
    [
        ("onnx.opst=12", "onnx has no option 'opst'; it takes:"),
        ("tflite-int8.io_type=uint8", "'tflite-int8' is not among the formats exported (onnx)"),
        ("io_type=uint8", "--option expects FORMAT.KEY=VALUE"),
    ],
)
def test_cli_option_errors_are_one_line(option, message, tmp_path, ckpt, capsys) -> None:
    argv = ["export", "--checkpoint", str(ckpt[0]), "--arch", "squeezenet1_1", "--classes"]
    argv += [str(ckpt[1]), "--to", "onnx", "--option", option, "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "onnx").exists()  # refused before any work
