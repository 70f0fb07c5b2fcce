"""A Gluon run exports through the same pipeline: its own symbol/params ARE the MXNet
format, ONNX comes from C's gluon_to_onnx, IR from that ONNX; all verified against the
run's symbol/params executed by the MXNet backend."""

from __future__ import annotations

import filecmp

import numpy as np
import pytest
from export_helpers import CLASSES

from caltech_edge.card import ModelCard
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.export import export
from caltech_edge.runtime.backends import open_runtime

mx = pytest.importorskip("mxnet")


@pytest.mark.parametrize(
    "arch, formats",
    [
        ("resnet18_v1", "onnx,mxnet,openvino,openvino-fp16"),
        ("resnet50_v1", "onnx,mxnet,openvino"),
    ],
)
def test_gluon_run_exports_to_every_format(arch, formats, tmp_path, synthetic_root) -> None:
    from caltech_edge.export.gluon import export_symbol
    from caltech_edge.frameworks.gluon_models import create_gluon_model

    mx.random.seed(0)
    run = tmp_path / "run"
    net = create_gluon_model(arch, len(CLASSES), weights=None, image_size=32)
    export_symbol(net, run / "model", image_size=32)
    ModelCard(
        arch=arch,
        class_names=CLASSES,
        preprocess=PreprocessSpec(image_size=32),
        framework="gluon",
    ).save(run / "card.json")

    result = export(
        run,
        formats=formats,
        out=tmp_path / "out",
        data=synthetic_root,
        verify_images=8,
    )
    assert set(result.reports) == set(formats.split(","))
    assert all(r.passed for r in result.reports.values()), [
        r.summary() for r in result.reports.values()
    ]
    assert all(r.against.startswith("gluon run") for r in result.reports.values())
    params = result.artifacts["mxnet"].with_name("model-0000.params")
    assert filecmp.cmp(params, run / "model-0000.params", shallow=False)
    for name in ("onnx", "mxnet", "openvino"):
        card = open_runtime(result.artifacts[name]).card
        assert card.framework == "gluon" and card.class_names == CLASSES


def test_gluon_params_checkpoint_from_the_cli(tmp_path, synthetic_root, capsys) -> None:
    from caltech_edge.cli import main
    from caltech_edge.frameworks.gluon_models import create_gluon_model

    mx.random.seed(1)
    net = create_gluon_model("squeezenet1.1", len(CLASSES), weights=None, image_size=32)
    params = tmp_path / "trained.params"
    net.save_parameters(str(params))
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(CLASSES) + "\n")
    out = tmp_path / "out"
    argv = ["export", "--checkpoint", str(params), "--arch", "squeezenet1_1", "--classes"]
    argv += [str(classes), "--image-size", "32", "--to", "mxnet,openvino", "--out", str(out)]
    assert main([*argv, "--data", str(synthetic_root), "--images", "8"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("PASS") == 3 and "vs gluon run" in printed
    expected = net(mx.nd.array(np.zeros((1, 3, 32, 32), np.float32))).asnumpy()
    got = open_runtime(out / "mxnet" / "model-symbol.json").infer(
        np.zeros((1, 3, 32, 32), np.float32)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

    classes.write_text("a\nb\n")  # two names for a four-way head
    assert main([*argv[:-1], str(tmp_path / "o2")]) == 2
    assert "does not fit 2 classes" in capsys.readouterr().err
