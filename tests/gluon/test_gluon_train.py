"""Gluon training end to end on generated JPEGs: accuracy, run dir, resume, frozen backbone,
SageMaker-style config, and the exports of the trained run (symbol/params and ONNX)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from caltech_edge.card import METADATA_KEY, ModelCard
from caltech_edge.config import TrainConfig
from caltech_edge.data.datasets import open_dataset
from caltech_edge.data.loader import iter_batches
from caltech_edge.rundir import RunDir

mx = pytest.importorskip("mxnet")

from caltech_edge.frameworks.gluon import evaluate, load_gluon_model, train  # noqa: E402
from caltech_edge.frameworks.gluon_models import create_gluon_model  # noqa: E402

BASE = dict(
    framework="gluon",
    arch="resnet18",
    weights="none",
    image_size=32,
    batch_size=16,
    train_per_class=10,
    optimizer="adam",
    learning_rate=0.01,
    scheduler="cosine",
    weight_decay=0.0,
)


@pytest.fixture(scope="module")
def trained(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    config = TrainConfig(**BASE, epochs=8, val_per_class=2)
    out = tmp_path_factory.mktemp("gluon-run")
    return train(config, data=synthetic_root, out=out, progress=False)


def _arrays(params_file: Path) -> dict[str, np.ndarray]:
    """Exported params by name without the instance prefix (resnetv10_ / resnetv11_)."""
    return {
        k.split(":", 1)[-1].split("_", 1)[1]: v.asnumpy()
        for k, v in mx.nd.load(str(params_file)).items()
    }


def test_training_reaches_high_accuracy_and_writes_a_complete_run(
    trained: RunDir, synthetic_root: Path
) -> None:
    metrics = json.loads(trained.metrics.read_text())
    assert metrics["test"]["top1"] >= 0.85, metrics["history"]
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]
    assert 1 <= metrics["best_epoch"] <= 8
    for path in (trained.card, trained.config, trained.classes, trained.split, trained.symbol,
                 trained.params, trained.plots / "curves.png", trained.plots / "confusion.png"):  # fmt: skip
        assert path.is_file() and path.stat().st_size > 0, path
    card = trained.load_card()
    assert (card.framework, card.arch, card.num_classes) == ("gluon", "resnet18_v1", 4)
    assert card.preprocess.image_size == 32
    assert TrainConfig.from_file(trained.config).framework.value == "gluon"
    # evaluate() re-reads the run from disk and agrees with what training reported
    result = evaluate(trained, data=synthetic_root)
    assert result["top1"] == pytest.approx(metrics["test"]["top1"])
    assert result["images"] == metrics["test"]["images"] == 4 * (16 - 12)
    assert set(result["per_class"]) == set(card.class_names)
    assert np.asarray(result["confusion"]).sum() == result["images"]


def test_symbol_params_load_in_mx_module_and_match_gluon(
    trained: RunDir, synthetic_root: Path
) -> None:
    net, card = load_gluon_model(trained)
    ds = open_dataset(synthetic_root)
    x, _ = next(iter_batches(ds, range(8), card.preprocess, batch_size=8))
    expected = net(mx.nd.array(x)).asnumpy()
    sym, arg, aux = mx.model.load_checkpoint(str(trained.root / "model"), 0)
    module = mx.mod.Module(sym, data_names=["data"], label_names=None, context=mx.cpu())
    module.bind(for_training=False, data_shapes=[("data", x.shape)])
    module.set_params(arg, aux)
    module.forward(mx.io.DataBatch([mx.nd.array(x)]), is_train=False)
    np.testing.assert_allclose(module.get_outputs()[0].asnumpy(), expected, rtol=1e-5, atol=1e-5)


def test_trained_run_exports_to_onnx_that_onnxruntime_runs(
    trained: RunDir, synthetic_root: Path, tmp_path: Path
) -> None:
    import onnx
    import onnxruntime as ort

    from caltech_edge.frameworks.gluon_export import gluon_to_onnx

    path = gluon_to_onnx(trained, tmp_path / "model.onnx", dynamic_batch=True)
    model = onnx.load(path)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["data"]
    props = {p.key: p.value for p in model.metadata_props}
    card = ModelCard.from_json(props[METADATA_KEY])
    assert (card.format, card.framework) == ("onnx", "gluon")
    assert card.class_names == trained.load_card().class_names
    net, _ = load_gluon_model(trained)
    ds = open_dataset(synthetic_root)
    x, _ = next(iter_batches(ds, range(0, 64, 4), card.preprocess, batch_size=16))
    expected = net(mx.nd.array(x)).asnumpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"data": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_resume_after_interruption_matches_an_uninterrupted_run(
    synthetic_root: Path, tmp_path: Path
) -> None:
    # a step schedule does not depend on `epochs`, so epochs=1 then 2 is a kill after epoch 1
    config = TrainConfig(
        **{**BASE, "scheduler": "step"}, lr_scheduler_step=(1,), epochs=2, strategy="last_k"
    )
    whole = train(config, data=synthetic_root, out=tmp_path / "whole", progress=False)
    # "killed" after epoch 1: its checkpoint is what an interrupted run leaves behind
    train(config.replace(epochs=1), data=synthetic_root, out=tmp_path / "resumed", progress=False)
    resumed = train(config, data=synthetic_root, out=tmp_path / "resumed", progress=False)
    a, b = _arrays(whole.params), _arrays(resumed.params)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=0, atol=1e-6, err_msg=key)
    history = json.loads(resumed.metrics.read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]


@pytest.mark.parametrize("cache_features", [False, True])
def test_head_only_keeps_the_backbone_bit_identical(
    synthetic_root: Path, tmp_path: Path, cache_features: bool
) -> None:
    source = create_gluon_model("resnet18_v1", 10, weights=None, image_size=32)
    source.save_parameters(str(tmp_path / "pretrained.params"))
    source.hybridize()
    source(mx.nd.zeros((1, 3, 32, 32)))
    source.export(str(tmp_path / "pretrained"))
    config = TrainConfig(
        **{**BASE, "weights": str(tmp_path / "pretrained.params")},
        epochs=2, strategy="head", cache_features=cache_features,
    )  # fmt: skip
    run = train(config, data=synthetic_root, out=tmp_path / "run", progress=False)
    before, after = _arrays(tmp_path / "pretrained-0000.params"), _arrays(run.params)
    head = {"dense0_weight", "dense0_bias"}
    assert set(after) == set(before)
    for key in set(before) - head:  # weights and BatchNorm running statistics alike
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    assert after["dense0_weight"].shape == (4, 512)
    assert not np.allclose(after["dense0_weight"], 0)


def test_sagemaker_hyperparameters_run_with_gluon(synthetic_root: Path, tmp_path: Path) -> None:
    from caltech_edge.train import train as train_any  # dispatches through the registry

    hp = {
        "num_layers": "18",
        "image_shape": "3,32,32",
        "epochs": "2",
        "learning_rate": "0.05",
        "lr_scheduler_step": "1",
        "lr_scheduler_factor": "0.5",
        "mini_batch_size": "16",
        "optimizer": "nag",
        "momentum": "0.9",
        "use_pretrained_model": "0",
        "augmentation_type": "crop_color",
        "num_training_samples": "40",
        "precision_dtype": "float32",
    }
    config = TrainConfig.from_sagemaker(hp).replace(framework="gluon", train_per_class=10)
    run = train_any(config, data=synthetic_root, out=tmp_path / "sm", progress=False)
    metrics = json.loads(run.metrics.read_text())
    assert run.load_card().arch == "resnet18_v1"
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["history"][1]["lr"] == pytest.approx(0.025)  # stepped at epoch 1
    assert np.isfinite(metrics["history"][-1]["train_loss"])


def test_early_stopping_stops_and_keeps_the_best_epoch(
    synthetic_root: Path, tmp_path: Path
) -> None:
    # an improvement of 100 in loss is impossible, so every epoch after the first is "bad"
    config = TrainConfig(
        **BASE, epochs=5, strategy="head", cache_features=True,
        early_stopping={"enabled": True, "patience": 1, "metric": "loss", "min_delta": 100.0},
    )  # fmt: skip
    run = train(config, data=synthetic_root, out=tmp_path / "es", progress=False)
    metrics = json.loads(run.metrics.read_text())
    assert metrics["stopped_early"] is True
    assert metrics["epochs_completed"] == 2 and len(metrics["history"]) == 2
    # the shared rule (train.common, as torch): min_delta decides stopping, not the best epoch,
    # which is the lowest loss seen
    split = "val" if metrics["history"][0].get("val_top1") is not None else "train"
    best = min(metrics["history"], key=lambda e: e[f"{split}_loss"])["epoch"]
    assert metrics["best_epoch"] == best
    assert run.load_card().metrics["best_epoch"] == best
