"""INT8 on a real network and real photos: the SqueezeNet 1.1 Caltech-256 weights on the
Caltech-256 sample (skipped with a reason when ../shared/data is absent)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def real(shared_data, sample_root, squeezenet_weights, tmp_path_factory):
    import torch
    import torchvision

    from caltech_edge.card import ModelCard, read_class_names
    from caltech_edge.data.calibration import CalibrationReader
    from caltech_edge.data.datasets import open_dataset
    from caltech_edge.data.loader import iter_batches
    from caltech_edge.data.splits import make_split
    from caltech_edge.data.transforms import PreprocessSpec
    from caltech_edge.export.onnx import export_onnx

    names = read_class_names(shared_data / "weights" / "squeezenet1_1_caltech256_idx_to_class.txt")
    model = torchvision.models.squeezenet1_1(num_classes=len(names))
    model.load_state_dict(torch.load(squeezenet_weights, map_location="cpu", weights_only=True))
    card = ModelCard(arch="squeezenet1_1", class_names=names, preprocess=PreprocessSpec(224))
    work = tmp_path_factory.mktemp("real-sq")
    onnx_path = export_onnx(model.eval(), card, work / "model.onnx")
    ds = open_dataset(sample_root)
    split = make_split(ds, train_per_class=20, test_per_class=12, seed=0)
    split.save(work / "split.json")
    index = {n: i for i, n in enumerate(names)}
    mapping = np.asarray([index[c] for c in ds.classes])
    x, y = next(iter_batches(ds, split.test, card.preprocess, batch_size=len(split.test)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 5 of 256 classes in the sample
        calib = CalibrationReader.from_dataset(
            sample_root, spec=card.preprocess, calib_size=50, split=work / "split.json"
        )
    return {"onnx": onnx_path, "images": x, "labels": mapping[y], "calib": calib, "work": work}


def _logits(path, images):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate(
        [sess.run(None, {"data": images[i : i + 1]})[0] for i in range(len(images))]
    )


def test_real_squeezenet_int8_keeps_top1_and_passes_verification(real):
    from caltech_edge.compress.onnx_int8 import quantize_onnx
    from caltech_edge.export.verify import verify_artifact

    q = quantize_onnx(real["onnx"], real["work"] / "int8.onnx", calibration=real["calib"])
    fp32, int8 = _logits(real["onnx"], real["images"]), _logits(q, real["images"])
    top1_fp32 = (fp32.argmax(1) == real["labels"]).mean()
    top1_int8 = (int8.argmax(1) == real["labels"]).mean()
    assert top1_fp32 >= 0.7  # the real weights on real photos (about 82% on the sample)
    assert top1_int8 >= top1_fp32 - 0.05  # 60 test images: 3 images of slack
    report = verify_artifact(q, against=real["onnx"], images=real["images"])  # D's default limits
    assert report.passed and report.top1_agreement >= 0.9


def test_real_squeezenet_openvino_int8_keeps_top1(real):
    from caltech_edge.compress.openvino_int8 import quantize_openvino
    from caltech_edge.export.onnx import read_onnx_card
    from caltech_edge.export.openvino import onnx_to_openvino
    from caltech_edge.runtime.backends import open_runtime

    card = read_onnx_card(real["onnx"])
    xml = onnx_to_openvino(real["onnx"], real["work"] / "ir" / "model.xml", card=card)
    q = quantize_openvino(xml, real["work"] / "ov8" / "model.xml", calibration=real["calib"])
    fp32 = _logits(real["onnx"], real["images"])
    int8 = open_runtime(q).infer(real["images"])
    assert (int8.argmax(1) == fp32.argmax(1)).mean() >= 0.9
    assert (int8.argmax(1) == real["labels"]).mean() >= (
        fp32.argmax(1) == real["labels"]
    ).mean() - 0.05
