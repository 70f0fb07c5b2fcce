"""Every FP32/FP16 row of FORMATS, for ResNet-18 (a run dir) and SqueezeNet 1.1 (a bare
state dict): exported, verified against torch on real JPEGs, card carried, loadable by the
plain runtimes without caltech-edge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from export_helpers import CLASSES, SIZE, make_run

from caltech_edge._io import sha256_file
from caltech_edge.data.datasets import open_dataset
from caltech_edge.data.transforms import PreprocessSpec, preprocess
from caltech_edge.errors import VerificationError
from caltech_edge.export import DEFAULT_FORMATS, FORMATS, export, verify_artifact
from caltech_edge.runtime.backends import open_runtime

# The device rows (tflite*, executorch, coreml) have their own tests: test_export_devices.py.
FLOAT_ROWS = [
    f for f in FORMATS.values() if f.precision in ("fp32", "fp16") and f.name in DEFAULT_FORMATS
]
EXPORTS = ["resnet_export", "squeezenet_export"]


def _images(root: Path, size: int = SIZE, n: int = 6) -> np.ndarray:
    ds = open_dataset(root)
    spec = PreprocessSpec(image_size=size)
    return np.stack([preprocess(ds[i][0], spec) for i in range(0, len(ds), len(ds) // n)][:n])


def _torch_logits(source, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return source.model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("fmt", FLOAT_ROWS, ids=lambda f: f.name)
@pytest.mark.parametrize("which", EXPORTS)
def test_every_format_exports_verifies_and_carries_its_card(request, which, fmt) -> None:
    result, _ = request.getfixturevalue(which)
    artifact = result.artifacts[fmt.name]
    assert artifact.is_file() and artifact.name.endswith(fmt.suffix)
    report = result.reports[fmt.name]
    assert report.passed, report.summary()
    assert report.precision == fmt.precision and report.backend == fmt.backend
    assert report.images == 16 and "synthetic" in report.data
    if fmt.precision == "fp32":
        assert report.max_abs_diff <= 1e-4 * max(1.0, report.extra["scale"])
        assert report.top1_agreement == 1.0
    assert report.artifact_accuracy is not None  # labels mapped onto the card's classes
    # the card travels inside (ONNX metadata_props / IR rt_info) or beside (MXNet) the file
    card = open_runtime(artifact).card
    assert card.class_names == CLASSES
    assert card.preprocess == PreprocessSpec(image_size=SIZE)
    assert card.arch == result.card.arch and card.precision == fmt.precision
    assert card.source_sha256 == result.card.source_sha256 != ""


def test_source_hash_is_the_checkpoint_hash(resnet_export, resnet_run) -> None:
    resnet_export = resnet_export[0]
    assert resnet_export.card.source_sha256 == sha256_file(resnet_run / "model.pt")
    summary = json.loads(resnet_export.summary.read_text())
    assert set(summary["formats"]) == {"onnx", "mxnet", "openvino", "openvino-fp16"}
    assert "mxnet/model-0000.params" in summary["formats"]["mxnet"]["files"]
    assert "openvino-fp16/model.bin" in summary["formats"]["openvino-fp16"]["files"]
    assert all(f["verification"]["passed"] for f in summary["formats"].values())


@pytest.mark.parametrize("which", EXPORTS)
def test_plain_runtimes_load_the_artifacts_without_caltech_edge(
    request, which, synthetic_root, tmp_path_factory
) -> None:
    import onnxruntime as ort
    import openvino as ov

    result, source = request.getfixturevalue(which)
    x = _images(synthetic_root)
    expected = _torch_logits(source, x)
    tol = dict(rtol=1e-4, atol=1e-4)

    sess = ort.InferenceSession(str(result.artifacts["onnx"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["data"]
    got = np.concatenate([sess.run(None, {"data": x[i : i + 1]})[0] for i in range(len(x))])
    np.testing.assert_allclose(got, expected, **tol)

    core = ov.Core()
    for name, atol in (("openvino", 1e-4), ("openvino-fp16", 5e-2)):
        compiled = core.compile_model(
            core.read_model(str(result.artifacts[name])), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
        )
        got = np.concatenate([compiled(x[i : i + 1])[0] for i in range(len(x))])
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=atol)

    # MXNet lives in the mxnet toolchain: plain mxnet there, no caltech_edge on its path
    got = _plain_mxnet_logits(result.artifacts["mxnet"], x, tmp_path_factory.mktemp("mx"))
    np.testing.assert_allclose(got, expected, **tol)


_PLAIN_MXNET = """
import sys, numpy as np, mxnet as mx
prefix, batch, out = sys.argv[1:]
x = np.load(batch)
sym, args, auxs = mx.model.load_checkpoint(prefix, 0)
mod = mx.mod.Module(symbol=sym, data_names=["data"], label_names=None, context=mx.cpu())
mod.bind(for_training=False, data_shapes=[("data", x.shape)])
mod.set_params(args, auxs)
mod.forward(mx.io.DataBatch([mx.nd.array(x)]), is_train=False)
np.save(out, mod.get_outputs()[0].asnumpy())
"""


def _plain_mxnet_logits(symbol, x, tmp):
    import subprocess

    from caltech_edge.toolchains.env import ensure
    from caltech_edge.toolchains.table import get_toolchain

    python = ensure(get_toolchain("mxnet"))
    np.save(tmp / "x.npy", x)
    prefix = str(symbol)[: -len("-symbol.json")]
    subprocess.run([str(python), "-c", _PLAIN_MXNET, prefix, str(tmp / "x.npy"),
                    str(tmp / "y.npy")], check=True, env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    return np.load(tmp / "y.npy")


def test_requested_format_pulls_in_its_source_and_dynamic_batch(resnet_run, tmp_path) -> None:
    result = export(
        resnet_run, formats=["openvino"], out=tmp_path, dynamic_batch=True, verify=False
    )
    assert set(result.artifacts) == {"onnx", "openvino"} and result.reports == {}
    x = np.random.default_rng(0).standard_normal((5, 3, SIZE, SIZE)).astype(np.float32)
    for name in ("onnx", "openvino"):
        rt = open_runtime(result.artifacts[name], precision_hint="f32")
        assert rt.infer(x).shape == (5, len(CLASSES))
    import onnxruntime as ort

    shape = ort.InferenceSession(str(result.artifacts["onnx"])).get_inputs()[0].shape
    assert isinstance(shape[0], str)  # a symbolic batch axis


def test_verification_catches_an_artifact_of_another_model(
    resnet_export, tmp_path, synthetic_root
) -> None:
    other = make_run(tmp_path / "other", "resnet18", seed=5)
    resnet_export = resnet_export[0]
    onnx_path = resnet_export.artifacts["onnx"]
    with pytest.raises(VerificationError, match=r"model\.onnx.*max\|diff\|"):
        verify_artifact(onnx_path, against=other, data=synthetic_root, limit=8)
    report = verify_artifact(onnx_path, against=other, data=synthetic_root, limit=8, check=False)
    assert not report.passed and report.max_abs_diff > 1e-2
    # and re-verifying against its own run later passes (what `caltech-edge verify` does)
    run = json.loads(resnet_export.summary.read_text())["source"].partition(" run ")[2]
    assert verify_artifact(onnx_path, against=Path(run), data=synthetic_root, limit=8).passed


def test_artifact_verifies_against_another_artifact(resnet_export, synthetic_root) -> None:
    resnet_export = resnet_export[0]
    report = verify_artifact(
        resnet_export.artifacts["mxnet"],
        against=resnet_export.artifacts["openvino"],
        data=synthetic_root,
        limit=8,
    )
    assert report.passed and report.against.startswith("openvino")


def test_resnet50_small_input(tmp_path, synthetic_root) -> None:
    run = make_run(tmp_path / "run", "resnet50", size=32)
    result = export(
        run,
        formats="onnx,mxnet,openvino",
        out=tmp_path / "out",
        data=synthetic_root,
        verify_images=8,
    )
    assert set(result.reports) == {"onnx", "mxnet", "openvino"}
    assert all(r.passed and r.top1_agreement == 1.0 for r in result.reports.values())


def test_int8_rows_run_the_compression_producers(tmp_path, synthetic_root) -> None:
    pytest.importorskip("nncf")
    run = make_run(tmp_path / "run", "squeezenet1_1", size=32)
    with pytest.warns(UserWarning):  # 64 images are too few for calibration, and it says so
        result = export(
            run,
            formats="onnx-int8,openvino-int8",
            out=tmp_path / "out",
            data=synthetic_root,
            verify_images=16,
        )
    for name in ("onnx-int8", "openvino-int8"):
        report = result.reports[name]
        assert report.passed and report.precision == "int8"
        assert open_runtime(result.artifacts[name]).card.precision == "int8"


def test_mxnet_flavoured_onnx_lists_initializers_as_inputs(resnet_export, tmp_path) -> None:
    import onnx

    from caltech_edge.export.onnx import export_onnx

    result, source = resnet_export
    plain = onnx.load(str(result.artifacts["onnx"]))
    assert [i.name for i in plain.graph.input] == ["data"]
    path = export_onnx(source.model, source.card, tmp_path / "mx.onnx", for_mxnet=True)
    flavoured = onnx.load(str(path))
    inputs = {i.name for i in flavoured.graph.input}
    assert "data" in inputs and {t.name for t in flavoured.graph.initializer} <= inputs
