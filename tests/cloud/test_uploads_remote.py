"""Capture uploads over HTTP PUT and inference over MQTT request/response, on real parts."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from caltech_edge.cloud.remote import RemoteInference, RemoteInferenceError, remote_predict
from caltech_edge.cloud.rules import load_rules
from caltech_edge.cloud.service import CloudService
from caltech_edge.cloud.store import CloudStore
from caltech_edge.cloud.uploads import UploadServer, upload_captures
from caltech_edge.runtime.capture import RetrainCapture
from caltech_edge.runtime.predictor import load_model

FRAME = np.random.default_rng(1).integers(0, 255, (40, 48, 3), dtype=np.uint8)


def _captures(root, n: int) -> RetrainCapture:
    capture = RetrainCapture(root, threshold=1.01)
    for i in range(n):
        result = {
            "predictions": [{"label": "001.red", "index": 0, "probability": 0.3}],
            "model": {"hash": "h"},
        }
        capture.offer(np.roll(FRAME, i, axis=0), result, name=f"frame_{i:04d}")
    return capture


def _put(url: str, data: bytes, sha: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, method="PUT",
                                 headers={"X-Content-SHA256": sha or hashlib.sha256(data).hexdigest()})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_upload_is_idempotent_bounded_and_deletes_after_ack(tmp_path):
    events = []
    server = UploadServer(
        tmp_path / "review", max_bytes=200_000, sink=lambda t, d: events.append((t, d))
    ).start()
    try:
        _captures(tmp_path / "dev", 3)
        counts = upload_captures(tmp_path / "dev", server.url, device="cam-1")
        assert counts == {"uploaded": 3, "already": 0, "failed": 0}
        assert list((tmp_path / "dev").glob("*/*.jpg")) == []  # deleted only after the ack
        stored = sorted((tmp_path / "review" / "cam-1" / "001.red").glob("*.jpg"))
        assert len(stored) == 3
        meta = json.loads(
            (tmp_path / "review/cam-1/.predictions/001.red/frame_0000.json").read_text()
        )
        assert (
            meta["predictions"][0]["probability"] == 0.3
            and meta["sha256"] == hashlib.sha256(stored[0].read_bytes()).hexdigest()
        )
        assert [t for t, _ in events] == ["caltech-edge/captures/cam-1"] * 3
        # a retry of the same file (lost reply) stores nothing new; another file under that name is refused
        url = server.url + "/captures/cam-1/001.red/frame_0000.jpg"
        assert _put(url, stored[0].read_bytes())[0] == 200
        other = cv2.imencode(".jpg", FRAME[::-1])[1].tobytes()
        assert _put(url, other)[0] == 409
        assert (
            _put(server.url + "/captures/cam-1/001.red/big.jpg", b"\xff\xd8\xff" + b"0" * 300_000)[
                0
            ]
            == 413
        )
        assert _put(server.url + "/captures/cam-1/..%2F..%2Fetc/x.jpg", other)[0] == 400
        assert _put(server.url + "/captures/cam-1/001.red/.hidden.jpg", other)[0] == 400
        assert _put(server.url + "/captures/cam-1/001.red/x.jpg", b"not a jpeg")[0] == 415
        assert _put(server.url + "/captures/cam-1/001.red/x.jpg", other, sha="0" * 64)[0] == 400
        assert len(events) == 3
    finally:
        server.close()


def test_remote_inference_mqtt5_and_311_and_bad_requests(cloud_model, rules_file, tmp_path, broker):
    model = load_model(cloud_model)
    remote = RemoteInference(model, max_bytes=50_000)
    store = CloudStore(tmp_path / "cloud.sqlite")
    service = CloudService(load_rules(rules_file), store, port=broker.port, remote=remote).start()
    assert service.wait_ready(10)
    image = cv2.imencode(".png", FRAME)[1].tobytes()
    try:
        local = model.predict(FRAME)
        for mqtt5 in (True, False):
            reply = remote_predict(
                image, host="127.0.0.1", port=broker.port, device="tiny-cam", mqtt5=mqtt5
            )
            assert reply["predictions"][0]["label"] == local["predictions"][0]["label"]
            assert reply["predictions"][0]["probability"] == pytest.approx(
                local["predictions"][0]["probability"], abs=1e-5
            )
            assert reply["model"]["hash"] == model.info["hash"] and reply["device"] == "tiny-cam"
        with pytest.raises(RemoteInferenceError, match="413"):
            remote_predict(
                b"\xff\xd8\xff" + bytes(60_000),
                host="127.0.0.1",
                port=broker.port,
                device="tiny-cam",
            )
        with pytest.raises(RemoteInferenceError, match="400"):
            remote_predict(
                b"garbage", host="127.0.0.1", port=broker.port, device="tiny-cam", mqtt5=False
            )
        reply = remote_predict(
            image, host="127.0.0.1", port=broker.port, device="tiny-cam"
        )  # still alive
        assert remote.stats() == {"answered": 3, "errors": 2, "dropped": 0}
        assert store.count("seen") == 0  # requests never enter the rules store
    finally:
        service.close()
