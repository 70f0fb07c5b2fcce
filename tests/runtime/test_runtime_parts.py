"""Buffer bounds, sequence persistence, sources, interpretation, stream, capture, payload schema."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from caltech_edge.errors import ConfigError
from caltech_edge.runtime.buffer import DiskBuffer, Sequencer
from caltech_edge.runtime.capture import RetrainCapture
from caltech_edge.runtime.interpret import InterpretConfig, Interpreter
from caltech_edge.runtime.payload import PAYLOAD_SCHEMA, make_payload, validate_payload
from caltech_edge.runtime.sources import FolderSource, ReadSource, open_source
from caltech_edge.runtime.stream import MjpegStream, split_mjpeg

REPO = Path(__file__).resolve().parents[2]


# -- buffer -------------------------------------------------------------------------------
def test_buffer_drop_oldest_bounds_count_and_bytes(tmp_path):
    buf = DiskBuffer(tmp_path / "b.sqlite", max_messages=5, max_bytes=10_000)
    for seq in range(1, 9):
        assert buf.put(seq, "t", b"x" * 100)
    assert len(buf) == 5 and [s for s, _, _ in buf.pending()] == [4, 5, 6, 7, 8]
    assert buf.stats()["dropped_oldest"] == 3
    buf.put(9, "t", b"y" * 9_800)  # byte bound: the oldest go until it fits exactly
    assert [s for s, _, _ in buf.pending()] == [7, 8, 9] and buf.nbytes == 10_000
    assert buf.put(10, "t", b"z" * 20_000) is False  # larger than the whole buffer
    assert buf.stats()["dropped_too_large"] == 1
    buf.close()
    again = DiskBuffer(tmp_path / "b.sqlite", max_messages=5, max_bytes=10_000)
    assert len(again) == 3 and again.stats()["dropped_oldest"] == 6  # counters persist


def test_buffer_drop_newest_and_remove(tmp_path):
    buf = DiskBuffer(tmp_path / "b.sqlite", max_messages=3, overflow="drop_newest")
    results = [buf.put(s, "t", b"p") for s in range(1, 6)]
    assert results == [True, True, True, False, False]
    assert [s for s, _, _ in buf.pending()] == [1, 2, 3]
    buf.remove(2)
    buf.remove(2)  # idempotent: a duplicate PUBACK is harmless
    assert [s for s, _, _ in buf.pending(after=1)] == [3]
    st = buf.stats()
    assert st["dropped_newest"] == 2 and st["delivered"] == 1 and st["pending"] == 2
    with pytest.raises(ConfigError):
        DiskBuffer(tmp_path / "c.sqlite", overflow="drop_random")


def test_sequencer_persists_and_is_thread_safe(tmp_path):
    seq = Sequencer(tmp_path / "s.sqlite")
    got = []
    lock = threading.Lock()

    def take():
        for _ in range(50):
            n = seq.next()
            with lock:
                got.append(n)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 201))
    seq.close()
    assert Sequencer(tmp_path / "s.sqlite").next() == 201


# -- sources ------------------------------------------------------------------------------
def test_sources_skip_and_count_bad_frames():
    good = np.zeros((32, 32, 3), np.uint8)
    frames = iter(
        [(True, good), (True, None), (True, np.zeros((0, 0, 3), np.uint8)), (True, good.astype(np.float32)),
         (True, np.zeros((32, 32, 2), np.uint8)), (True, good), (False, None)]
    )  # fmt: skip
    src = ReadSource("fake", lambda: lambda: next(frames), live=False)
    assert [i for i, _ in src] == [0, 1]
    assert src.stats()["skipped_bad"] == 4 and set(src.bad) == {"none", "empty", "dtype", "shape"}


def test_live_source_reconnects_with_bounded_backoff():
    opened, waits = [], []
    reads = iter(
        [(True, np.zeros((16, 16, 3), np.uint8))]
        + [(False, None)] * 3
        + [(True, np.ones((16, 16, 3), np.uint8))]
    )

    def opener():
        opened.append(1)
        if len(opened) in (2, 3, 4):  # the camera is gone for three attempts
            return None
        return lambda: next(reads, (False, None))

    src = ReadSource("cam", opener, live=True, failures_before_reconnect=3, max_backoff=1.0,
                     max_reconnects=4, sleep=waits.append)  # fmt: skip
    frames = [f for _, f in src]
    assert len(frames) == 2 and frames[1].max() == 1  # delivered again after the reconnect
    assert src.reconnects >= 1
    assert src.backoffs[:3] == [0.5, 1.0, 1.0]  # exponential, capped at max_backoff


def test_open_source_kinds(tmp_path, video):
    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((20, 20, 3), 50, np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    folder = open_source(tmp_path)
    assert isinstance(folder, FolderSource) and len(list(folder)) == 1 and folder.skipped == 1
    assert len(list(open_source(video))) == 40
    with pytest.raises(ConfigError, match="not a camera index"):
        open_source(tmp_path / "missing.avi")
    with pytest.raises(ConfigError, match="awscam"):
        open_source("awscam")


# -- interpretation -----------------------------------------------------------------------
def _result(index, p):
    other = 9 if index != 9 else 1
    return {"predictions": [{"label": f"c{index}", "index": index, "probability": p},
                            {"label": f"c{other}", "index": other, "probability": round(1 - p, 6)}]}  # fmt: skip


def test_interpret_every_smoothing_threshold_and_change():
    it = Interpreter(InterpretConfig(every=3, smooth=3, min_confidence=0.5, publish="change"))
    assert [i for i in range(7) if it.should_infer(i)] == [0, 3, 6]
    smoothed, top, reason = it.update(_result(1, 0.9))
    assert top["index"] == 1 and reason == "change"
    assert it.update(_result(1, 0.8)) is None  # same answer: not published again
    assert it.update(_result(2, 0.7)) is None  # one flicker to class 2: smoothing keeps class 1
    smoothed, top, reason = it.update(_result(9, 0.9))  # 9 leads at 0.467 < 0.5: "nothing"
    assert top is None and smoothed[0]["index"] == 9 and reason == "change"
    assert smoothed[0]["probability"] == pytest.approx((0.2 + 0.3 + 0.9) / 3, abs=1e-6)
    smoothed, top, reason = it.update(_result(9, 0.9))
    assert top["index"] == 9 and top["probability"] == pytest.approx(0.7, abs=1e-6)


def test_interpret_interval_uses_clock_and_threshold_gives_none():
    now = [0.0]
    it = Interpreter(
        InterpretConfig(publish="interval", interval_s=1.0, min_confidence=0.95),
        clock=lambda: now[0],
    )
    assert it.update(_result(1, 0.6))[1] is None  # below min confidence
    now[0] = 0.5
    assert it.update(_result(1, 0.6)) is None
    now[0] = 1.2
    assert it.update(_result(1, 0.99))[2] == "interval"
    with pytest.raises(ConfigError):
        InterpretConfig(publish="interval")


# -- stream -------------------------------------------------------------------------------
def test_stream_file_writes_valid_mjpeg(tmp_path):
    stream = MjpegStream(tmp_path / "out.mjpg", max_bytes=10**7)
    frame = np.full((120, 160, 3), 80, np.uint8)
    for i in range(4):
        assert stream.write(frame, [{"label": "bus", "index": 0, "probability": 0.25 * i}])
    stream.close()
    jpegs = split_mjpeg((tmp_path / "out.mjpg").read_bytes())
    assert len(jpegs) == 4
    img = cv2.imdecode(np.frombuffer(jpegs[-1], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == frame.shape and not np.array_equal(img, frame)  # the label was drawn


def test_stream_fifo_never_blocks_without_reader_and_delivers_with_one(tmp_path):
    fifo = tmp_path / "results.mjpeg"
    stream = MjpegStream(fifo, make_fifo=True)
    frame = np.full((60, 80, 3), 200, np.uint8)
    assert stream.write(frame) is False and stream.dropped == 1  # no reader: dropped, not blocked
    fd = os.open(str(fifo), os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert stream.write(frame, [{"label": "x", "index": 0, "probability": 1.0}])
        data = os.read(fd, 1 << 20)
        assert len(split_mjpeg(data)) == 1
        # a reader that does not read: the pipe fills and frames are dropped, never blocking
        for _ in range(200):
            stream.write(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
        assert stream.dropped > 1
    finally:
        os.close(fd)
        stream.close()


# -- capture ------------------------------------------------------------------------------
def test_capture_low_confidence_bounded_and_readable_as_dataset(tmp_path):
    from caltech_edge.data.datasets import open_dataset

    cap = RetrainCapture(tmp_path / "cap", threshold=0.5, max_files=3)
    frame = np.full((40, 50, 3), 100, np.uint8)
    result = {
        "predictions": [{"label": "school-bus", "index": 177, "probability": 0.3}],
        "timestamp": "t",
    }
    sure = {"predictions": [{"label": "school-bus", "index": 177, "probability": 0.9}]}
    assert cap.offer(frame, sure, name="sure") is None
    saved = [cap.offer(frame, result, name=f"f{i}") for i in range(5)]
    assert sum(p is not None for p in saved) == 3 and cap.dropped_full == 2
    assert saved[0].parent.name == "178.school-bus"
    meta = json.loads(
        (tmp_path / "cap" / ".predictions" / "178.school-bus" / "f0.json").read_text()
    )
    assert meta["reason"] == "low_confidence" and meta["predictions"][0]["index"] == 177
    ds = open_dataset(tmp_path / "cap")
    assert ds.classes == ("178.school-bus",) and len(ds) == 3 and not ds.skipped
    assert (
        RetrainCapture(tmp_path / "cap", max_files=3).offer(frame, result, name="more") is None
    )  # bound survives restarts


# -- payload schema -----------------------------------------------------------------------
def test_payload_schema_matches_docs_and_jsonschema():
    jsonschema = pytest.importorskip("jsonschema")
    doc = json.loads((REPO / "docs" / "payload.schema.json").read_text())
    assert doc == PAYLOAD_SCHEMA
    result = {
        "predictions": [{"label": "a", "index": 0, "probability": 0.7}],
        "latency_ms": {"total": 1.0, "preprocess": 0.5, "inference": 0.4, "postprocess": 0.1},
        "model": {"name": "m", "version": "1", "hash": "ab", "format": "onnx", "precision": "fp32"},
        "timestamp": "2026-01-01T00:00:00.000+00:00",
    }
    payload = make_payload(
        result, seq=7, device="cam", top=result["predictions"][0], frame={"index": 3}
    )
    jsonschema.validate(payload, PAYLOAD_SCHEMA)
    assert validate_payload(payload) == []
    for broken in ({**payload, "seq": 0}, {**payload, "schema_version": 2}, {k: v for k, v in payload.items() if k != "model"},
                   {**payload, "predictions": [{"label": "a", "index": -1, "probability": 2}]}, {**payload, "seq": True}):  # fmt: skip
        assert validate_payload(broken), broken
        if broken.get("seq") is not True:
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(broken, PAYLOAD_SCHEMA)


# -- pipelined loop and fused preprocessing -----------------------------------------------
def test_prefetch_loop_gives_the_same_results(edge_artifacts, video):
    from caltech_edge.runtime import load_model, run

    model = load_model(edge_artifacts["onnxruntime"])
    plain, piped = [], []
    run(open_source(video), model, on_payload=plain.append, max_frames=12)
    stats = run(open_source(video), model, on_payload=piped.append, max_frames=12, prefetch=True,
                interpret=InterpretConfig(every=1))  # fmt: skip
    assert stats["frames"] == 12 and len(piped) == 12
    assert [p["predictions"] for p in piped] == [p["predictions"] for p in plain]
    assert all(p["latency_ms"]["preprocess"] > 0 for p in piped)


def test_prefetch_thread_stops_when_a_consumer_raises(edge_artifacts, video):
    """A failing on_payload (or publisher) ends the run without a stray prefetch thread."""
    from caltech_edge.runtime import load_model, run

    model = load_model(edge_artifacts["onnxruntime"])
    before = set(threading.enumerate())

    def fail(payload):
        raise RuntimeError("consumer broke")

    with pytest.raises(RuntimeError, match="consumer broke"):
        run(open_source(video), model, on_payload=fail, max_frames=12, prefetch=True)
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []


def test_fused_openvino_agrees_with_reference_preprocessing(edge_artifacts):
    from caltech_edge.runtime import load_model
    from caltech_edge.runtime.fused import crop_box, load_fused

    assert crop_box(480, 640, 224, 256) == (30, 110, 450, 530)
    ref = load_model(edge_artifacts["openvino"], precision_hint="f32")
    fused = load_fused(edge_artifacts["openvino"], precision_hint="f32", resize="area")
    rng = np.random.default_rng(0)
    base = cv2.resize(
        rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (160, 120), interpolation=cv2.INTER_CUBIC
    )
    a, b = ref.predict(base, top_k=3), fused.predict(base, top_k=3)
    assert b["model"]["backend"] == "openvino-fused"
    pa = {p["index"]: p["probability"] for p in a["predictions"]}
    pb = {p["index"]: p["probability"] for p in b["predictions"]}
    assert max(abs(pa[i] - pb[i]) for i in pa) < 0.05  # same pixels up to interpolation
    # the uint8 square fed to the graph is the reference crop up to resampling
    from caltech_edge.data.transforms import denormalize, preprocess

    smooth = rng.integers(0, 255, (3, 4, 3), dtype=np.uint8)  # camera-like: no pixel-level noise
    frame = cv2.resize(smooth, (640, 480), interpolation=cv2.INTER_LINEAR)
    reference = denormalize(preprocess(frame, fused.spec, input_order="BGR"), fused.spec)
    for mode, tolerance in (("area", 5.0), ("linear", 8.0)):  # of 255; 32 px model
        fused.runtime.resize = mode
        square_rgb = fused.runtime.crop_resize(frame)[..., ::-1].astype(np.float32)
        assert np.abs(square_rgb - reference).mean() < tolerance, mode


def test_buffer_same_seq_twice_keeps_counts(tmp_path):
    buf = DiskBuffer(tmp_path / "b.sqlite")
    buf.put(1, "t", b"aaaa")
    buf.put(1, "t", b"bb")
    assert len(buf) == 1 and buf.nbytes == 2 and buf.pending()[0][2] == b"bb"


def test_cli_infer_fused_with_prefetch_falls_back_cleanly(edge_artifacts, video, tmp_path):
    from runtime_helpers import run_cli

    proc = run_cli("infer", "--model", str(edge_artifacts["openvino"]), "--source", str(video), "--fused",
                   "--prefetch", "--max-frames", "5", "--json", "--buffer-dir", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    payloads = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [p["seq"] for p in payloads] == [1, 2, 3, 4, 5]
    assert all(p["model"]["backend"] == "openvino-fused" for p in payloads)


def test_fast_preprocess_is_close_to_the_reference(edge_artifacts):
    from caltech_edge.runtime import load_model

    ref = load_model(edge_artifacts["onnxruntime"])
    fast = load_model(edge_artifacts["onnxruntime"], fast_preprocess="linear")
    rng = np.random.default_rng(3)
    for _ in range(3):
        frame = cv2.resize(rng.integers(0, 255, (3, 4, 3), dtype=np.uint8), (640, 480))
        a, b = ref.predict(frame, top_k=3), fast.predict(frame, top_k=3)
        pa = {p["index"]: p["probability"] for p in a["predictions"]}
        pb = {p["index"]: p["probability"] for p in b["predictions"]}
        assert max(abs(pa[i] - pb[i]) for i in pa) < 0.05
    with pytest.raises(ValueError, match="resize must be one of"):
        load_model(edge_artifacts["onnxruntime"], fast_preprocess="cubic").predict(frame)
