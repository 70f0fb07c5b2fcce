"""``caltech-edge export`` (run dir and --checkpoint) and ``caltech-edge verify``."""

from __future__ import annotations

import json

from export_helpers import make_checkpoint

from caltech_edge.cli import main


def test_export_checkpoint_then_verify(tmp_path, synthetic_root, resnet_run, capsys) -> None:
    ckpt, classes = make_checkpoint(tmp_path / "ckpt", "squeezenet1_1")
    out = tmp_path / "out"
    argv = ["export", "--checkpoint", str(ckpt), "--arch", "squeezenet1_1"]
    argv += ["--classes", str(classes), "--image-size", "64", "--to", "openvino-fp16"]
    argv += ["--out", str(out), "--data", str(synthetic_root), "--images", "8"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "PASS" in printed and "openvino-fp16" in printed
    assert (out / "openvino-fp16" / "model.xml").is_file() and (
        out / "onnx" / "model.onnx"
    ).is_file()
    summary = json.loads((out / "export.json").read_text())
    assert summary["card"]["preprocess"]["image_size"] == 64

    verify = ["verify", str(out / "openvino-fp16" / "model.xml"), "--against"]
    assert (
        main(
            [
                *verify,
                str(out / "onnx" / "model.onnx"),
                "--data",
                str(synthetic_root),
                "--images",
                "8",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["images"] == 8 and report["precision"] == "fp16"

    # the same artifact against a different model: exit 1 and the numbers
    out2 = tmp_path / "run-export"
    assert main(["export", str(resnet_run), "--to", "onnx", "--out", str(out2), "--no-verify"]) == 0
    capsys.readouterr()
    code = main(
        [
            "verify",
            str(out2 / "onnx" / "model.onnx"),
            "--against",
            str(out / "onnx" / "model.onnx"),
            "--data",
            str(synthetic_root),
            "--images",
            "4",
        ]
    )
    assert code == 1  # another model: verification fails, with the numbers
    assert "FAIL" in capsys.readouterr().out


def test_help_lists_every_format(capsys) -> None:
    import pytest

    from caltech_edge.export.formats import FORMATS

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in FORMATS)
