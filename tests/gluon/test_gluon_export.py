"""Gluon exports of ResNet-18 v1, ResNet-50 v1 and SqueezeNet 1.1: symbol/params that
``mx.mod.Module`` loads and ONNX that ONNX Runtime (and OpenVINO) run, equal to Gluon."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caltech_edge.card import METADATA_KEY, ModelCard
from caltech_edge.data.datasets import open_dataset
from caltech_edge.data.loader import iter_batches
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.errors import ExportError

mx = pytest.importorskip("mxnet")

from caltech_edge.frameworks.gluon_export import (  # noqa: E402
    export_run_symbol,
    export_symbol,
    gluon_to_onnx,
)
from caltech_edge.frameworks.gluon_models import create_gluon_model  # noqa: E402

SIZE = 32
ARCHS = ["resnet18_v1", "resnet50_v1", "squeezenet1.1"]


def _card(arch: str) -> ModelCard:
    return ModelCard(
        arch=arch,
        class_names=[f"class-{i}" for i in range(5)],
        preprocess=PreprocessSpec(image_size=SIZE),
        framework="gluon",
    )


@pytest.fixture(scope="module")
def images(synthetic_root: Path) -> np.ndarray:
    """Real JPEGs through the one preprocessing definition (8 images, 4 classes)."""
    ds = open_dataset(synthetic_root)
    x, _ = next(iter_batches(ds, range(0, 64, 8), PreprocessSpec(image_size=SIZE), batch_size=8))
    return x


@pytest.fixture(scope="module", params=ARCHS)
def exported(request, images, tmp_path_factory):
    arch = request.param
    mx.random.seed(0)
    net = create_gluon_model(arch, 5, weights=None, image_size=SIZE)
    # random BatchNorm statistics and a larger head make the logits far from zero, so the
    # parity check below compares real signal, not rounding noise around 0
    for name, param in net._collect_params_with_prefix().items():
        if name.endswith(("running_mean", "beta")):
            param.set_data(mx.nd.random.normal(0, 0.1, shape=param.shape))
        elif name.endswith(("running_var", "gamma")):
            param.set_data(mx.nd.random.uniform(0.5, 1.5, shape=param.shape))
    # the head is linear up to a ReLU: scale it so the largest logit is about 5
    factor = 5.0 / float(np.abs(net(mx.nd.array(images)).asnumpy()).max())
    for param in net.output.collect_params().values():
        param.set_data(param.data() * factor)
    expected = net(mx.nd.array(images)).asnumpy()
    out = tmp_path_factory.mktemp(arch)
    symbol, params = export_symbol(net, out / "model", image_size=SIZE)
    onnx_path = gluon_to_onnx(out / "model", out / "model.onnx", card=_card(arch))
    return arch, expected, symbol, params, onnx_path


def test_symbol_params_load_in_mx_module(exported, images) -> None:
    _, expected, symbol, params, _ = exported
    assert symbol.name == "model-symbol.json" and params.name == "model-0000.params"
    sym, arg, aux = mx.model.load_checkpoint(str(symbol.parent / "model"), 0)
    module = mx.mod.Module(sym, data_names=["data"], label_names=None, context=mx.cpu())
    module.bind(for_training=False, data_shapes=[("data", images.shape)])
    module.set_params(arg, aux)
    module.forward(mx.io.DataBatch([mx.nd.array(images)]), is_train=False)
    got = module.get_outputs()[0].asnumpy()
    assert np.abs(expected).max() > 0.1, "degenerate logits make parity meaningless"
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_onnx_runs_in_onnxruntime_like_gluon(exported, images) -> None:
    import onnx
    import onnxruntime as ort

    arch, expected, _, params, onnx_path = exported
    model = onnx.load(onnx_path)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["data"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert not {t.name for t in model.graph.initializer} & {i.name for i in model.graph.input}
    assert model.opset_import[0].version == 13
    # weights are stored bit-exactly (packed as raw bytes by fast_onnx_initializers)
    from onnx import helper, numpy_helper

    weights = {k.split(":", 1)[-1]: v.asnumpy() for k, v in mx.nd.load(str(params)).items()}
    stored = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert len(weights.keys() & stored.keys()) >= len(weights) - 1
    for name in weights.keys() & stored.keys():
        np.testing.assert_array_equal(stored[name], weights[name], err_msg=name)
    assert helper.make_tensor.__module__ == "onnx.helper"  # the speed-up was undone
    card = ModelCard.from_json({p.key: p.value for p in model.metadata_props}[METADATA_KEY])
    assert (card.arch, card.format, card.num_classes) == (arch, "onnx", 5)
    assert len(card.source_sha256) == 64
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = np.concatenate([session.run(None, {"data": x[None]})[0] for x in images])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_dynamic_batch_opset12(images, tmp_path: Path) -> None:
    """(The IR from this ONNX is checked from the core: tests/toolchain/...gluon_export.)"""
    import onnxruntime as ort

    net = create_gluon_model("resnet18_v1", 5, weights=None, image_size=SIZE)
    expected = net(mx.nd.array(images)).asnumpy()
    card = _card("resnet18_v1")
    path = gluon_to_onnx(net, tmp_path / "dyn.onnx", card=card, opset=12, dynamic_batch=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tol = 1e-5 * np.abs(expected).max()
    np.testing.assert_allclose(
        session.run(None, {"data": images})[0], expected, atol=tol, rtol=1e-4
    )


def test_bad_requests_are_export_errors(tmp_path: Path) -> None:
    net = create_gluon_model("squeezenet1.1", 5, weights=None, image_size=SIZE)
    with pytest.raises(ExportError, match="opset 11"):
        gluon_to_onnx(net, tmp_path / "m.onnx", card=_card("squeezenet1.1"), opset=11)
    with pytest.raises(ExportError, match="not found"):
        gluon_to_onnx(tmp_path / "missing", tmp_path / "m.onnx", card=_card("squeezenet1.1"))
    export_symbol(net, tmp_path / "bare", image_size=SIZE)
    with pytest.raises(ExportError, match="no model card"):
        gluon_to_onnx(tmp_path / "bare", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_export_run_symbol_writes_a_card_sidecar(tmp_path: Path) -> None:
    net = create_gluon_model("squeezenet1.1", 5, weights=None, image_size=SIZE)
    export_symbol(net, tmp_path / "run" / "model", image_size=SIZE)
    _card("squeezenet1.1").save(tmp_path / "run" / "card.json")
    symbol, params = export_run_symbol(tmp_path / "run", tmp_path / "out")
    card = ModelCard.load(tmp_path / "out" / "model-symbol.card.json")
    assert (
        card.format == "mxnet"
        and params.read_bytes() == (tmp_path / "run" / "model-0000.params").read_bytes()
    )
    assert symbol.is_file()
