"""load_model/predict on every backend: labels from the card, softmax, parity with torch."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from caltech_edge.data.transforms import preprocess
from caltech_edge.runtime import load_model
from caltech_edge.runtime.frames import BadFrameError

BACKENDS = ("onnxruntime", "openvino", "mxnet")


def softmax(logits: np.ndarray) -> np.ndarray:
    """The reference: row-wise softmax in float64, max subtracted, as float32."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_matches_torch_and_is_json(edge_artifacts, frame, backend):
    model = load_model(
        edge_artifacts[backend], precision_hint="f32" if backend == "openvino" else None
    )
    card = edge_artifacts["card"]
    # the raw runtime on the library's preprocessing of the same BGR frame
    x = preprocess(frame, card.preprocess, input_order="BGR")[None]
    expected = softmax(model.runtime.infer(x))[0]
    out = model.predict(frame, top_k=3)
    json.loads(json.dumps(out))  # JSON-serializable
    probs = [p["probability"] for p in out["predictions"]]
    assert probs == sorted(probs, reverse=True)
    assert abs(sum(probs) - 1.0) < 1e-5  # 3 classes, top 3
    best = out["predictions"][0]
    assert best["index"] == int(np.argmax(expected))
    assert best["label"] == card.class_names[best["index"]]
    np.testing.assert_allclose(best["probability"], expected.max(), atol=1e-5)
    assert set(out["latency_ms"]) == {"total", "preprocess", "inference", "postprocess"}
    assert out["model"]["name"] == "tiny-resnet18" and out["model"]["version"] == "3"
    assert len(out["model"]["hash"]) == 64
    # the backend itself agrees with torch on a fixed tensor (FP32 everywhere)
    np.testing.assert_allclose(
        model.runtime.infer(edge_artifacts["x"]), edge_artifacts["reference"], atol=1e-3
    )


def test_bgr_is_converted_once(edge_artifacts, frame):
    model = load_model(edge_artifacts["onnxruntime"])
    as_bgr = model.predict(frame)["predictions"]
    swapped = model.predict(np.ascontiguousarray(frame[..., ::-1]))["predictions"]
    x = preprocess(frame, model.spec, input_order="RGB")[None]  # frame taken as RGB = swapped BGR
    assert swapped[0]["index"] == int(np.argmax(model.runtime.infer(x)))
    assert as_bgr[0]["probability"] != pytest.approx(swapped[0]["probability"], abs=1e-7)


def test_predict_batch_equals_single(edge_artifacts, frame):
    model = load_model(edge_artifacts["onnxruntime"])
    frames = [frame, cv2.flip(frame, 1), np.zeros((40, 40), np.uint8)]
    batch = model.predict_batch(frames, top_k=2)
    assert len(batch) == 3
    for f, b in zip(frames, batch):
        single = model.predict(f, top_k=2)
        assert [p["index"] for p in b["predictions"]] == [p["index"] for p in single["predictions"]]
        np.testing.assert_allclose(
            [p["probability"] for p in b["predictions"]],
            [p["probability"] for p in single["predictions"]],
            atol=1e-5,
        )


def test_roi_and_bad_frames(edge_artifacts, frame):
    model = load_model(edge_artifacts["onnxruntime"])
    crop = model.predict(frame, roi=(0.5, 0.5, 0.5, 0.5))
    direct = model.predict(np.ascontiguousarray(frame[24:, 32:]))
    assert crop["predictions"][0]["probability"] == pytest.approx(
        direct["predictions"][0]["probability"], abs=1e-6
    )
    for bad in (
        None,
        np.zeros((0, 0, 3), np.uint8),
        frame.astype(np.float32),
        np.zeros((4, 4, 2), np.uint8),
    ):
        with pytest.raises(BadFrameError):
            model.predict(bad)
    with pytest.raises(BadFrameError, match="inside the frame"):
        model.predict(frame, roi=(500, 500, 10, 10))


def test_top_k_softmax_gives_softmax_probabilities_best_first():
    from caltech_edge.runtime.predictor import top_k_softmax

    rng = np.random.default_rng(3)
    labels = [f"c{i}" for i in range(257)]
    for _ in range(20):
        row = (rng.standard_normal(257) * rng.uniform(0.1, 30)).astype(np.float32)
        probs = softmax(row[None])[0]
        out = top_k_softmax(row, labels, 5)
        assert [p["index"] for p in out] == list(np.argsort(-row, kind="stable")[:5])
        assert [p["probability"] for p in out] == [float(probs[p["index"]]) for p in out]
        assert all(p["label"] == labels[p["index"]] for p in out)
    # int8 logits tie often: equal logits come lower index first, on both selection paths
    for k in (5, 12):
        row = np.round(rng.standard_normal(257)).astype(np.float32)
        out = top_k_softmax(row, labels, k)
        assert [p["index"] for p in out] == list(np.argsort(-row, kind="stable")[:k])
        assert sum(p["probability"] for p in out) < 1.0
    assert len(top_k_softmax(np.zeros(3), ["a", "b", "c"], 10)) == 3  # k capped at the classes
    assert top_k_softmax(np.array([0.0, 5.0]), ["a"], 1)[0]["label"] == "1"  # no name: index
