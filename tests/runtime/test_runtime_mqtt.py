"""Every result reaches a real Mosquitto subscriber: all backends, and across a broker restart."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
from runtime_helpers import Subscriber, run_cli

from caltech_edge.runtime.buffer import DiskBuffer
from caltech_edge.runtime.payload import validate_payload
from caltech_edge.runtime.publish import MqttPublisher
from caltech_edge.runtime.stream import split_mjpeg

TOPIC = "$aws/things/test-cam/infer"


def _infer_args(model, video, broker, tmp_path, *extra):
    return [
        "infer", "--model", str(model), "--source", str(video), "--device", "test-cam",
        "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
        "--buffer-dir", str(tmp_path / "state"), "--json", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "mxnet"])
def test_cli_infer_video_every_result_arrives(edge_artifacts, video, broker, tmp_path, backend):
    sub = Subscriber(broker.port, TOPIC, client_id=f"sub-{backend}")
    try:
        proc = run_cli(
            *_infer_args(edge_artifacts[backend], video, broker, tmp_path, "--max-frames", "30")
        )
        assert proc.returncode == 0, proc.stderr
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [p["seq"] for p in lines] == list(range(1, 31))
        for payload in lines:
            assert validate_payload(payload) == []
            assert payload["model"]["backend"] == backend
        got = sub.wait_for(set(range(1, 31)))
        assert got == set(range(1, 31))
        stats = json.loads(proc.stderr.strip().splitlines()[-1])
        assert stats["delivered_all"] and stats["publishers"][1]["buffer"]["pending"] == 0
    finally:
        sub.close()
    # a second run continues the persisted sequence, with the project stream and capture on
    stream, capture = tmp_path / "results.mjpg", tmp_path / "capture"
    proc = run_cli(
        *_infer_args(edge_artifacts[backend], video, broker, tmp_path, "--max-frames", "2"),
        "--stream", str(stream), "--capture-dir", str(capture), "--capture-threshold", "1.01",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["seq"] for line in proc.stdout.splitlines()] == [31, 32]
    assert len(split_mjpeg(stream.read_bytes())) == 2
    assert len(list(capture.glob("*/*.jpg"))) == 2


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "mxnet"])
def test_broker_restart_mid_stream_loses_nothing(edge_artifacts, video, broker, tmp_path, backend):
    sub = Subscriber(broker.port, TOPIC, client_id=f"sub-restart-{backend}")
    n = 40
    cmd = [sys.executable, "-c", "import sys; from caltech_edge.cli import main; sys.exit(main())",
           *_infer_args(edge_artifacts[backend], video, broker, tmp_path,
                        "--max-frames", str(n), "--rate", "20", "--flush-timeout", "60")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # wait until results flow, then take the broker away for a while mid-stream
        deadline = time.monotonic() + 60
        while len(sub.seqs()) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(sub.seqs()) >= 5, "no results before the outage"
        broker.stop()
        # the subscriber's persistent session was saved, so it is subscribed on restart
        assert (broker.root / "mosquitto.db").exists()
        before = set(sub.seqs())
        time.sleep(1.0)  # ~20 frames are produced while the broker is down
        broker.start()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        produced = [json.loads(line)["seq"] for line in out.splitlines()]
        assert produced == list(range(1, n + 1))
        got = sub.wait_for(set(produced), timeout=30)
        assert got == set(produced), f"missing {sorted(set(produced) - got)}"
        assert len(before) < n  # the outage really was mid-stream
        # delivered in order once de-duplicated (first arrival of each seq)
        first_seen = list(dict.fromkeys(sub.seqs()))
        assert first_seen == sorted(first_seen)
        stats = json.loads(err.strip().splitlines()[-1])
        mqtt = stats["publishers"][1]
        assert mqtt["connects"] >= 2 and mqtt["buffer"]["pending"] == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()


def test_publisher_buffers_until_broker_exists_then_delivers_in_order(broker, tmp_path):
    broker.stop()  # nothing listening yet: the device boots before the network
    buf = DiskBuffer(tmp_path / "outbox.sqlite")
    pub = MqttPublisher("127.0.0.1", broker.port, topic="t/in-order", buffer=buf, client_id="dev-1")
    try:
        for seq in range(1, 51):
            pub.publish({"seq": seq, "payload": "x" * 10})
        time.sleep(0.3)
        assert len(buf) == 50 and not pub.connected
        broker.start()
        sub = Subscriber(broker.port, "t/in-order", client_id="sub-order")
        try:
            assert pub.flush(timeout=30), pub.stats()
            got = sub.wait_for(set(range(1, 51)))
            assert got == set(range(1, 51))
            assert list(dict.fromkeys(sub.seqs())) == list(range(1, 51))
            assert buf.stats()["delivered"] == 50
        finally:
            sub.close()
    finally:
        pub.close()


def test_outbox_survives_process_restart(broker, tmp_path):
    """Results buffered by a process that died are sent by the next one."""
    broker.stop()
    buf = DiskBuffer(tmp_path / "outbox.sqlite")
    for seq in range(1, 11):
        buf.put(seq, "t/restart", json.dumps({"seq": seq}).encode())
    buf.close()  # the "device" loses power here
    broker.start()
    sub = Subscriber(broker.port, "t/restart", client_id="sub-restart2")
    buf = DiskBuffer(tmp_path / "outbox.sqlite")
    pub = MqttPublisher("127.0.0.1", broker.port, topic="t/restart", buffer=buf)
    try:
        assert pub.flush(timeout=20)
        assert sub.wait_for(set(range(1, 11))) == set(range(1, 11))
    finally:
        pub.close()
        sub.close()


def test_concurrent_publish_thread_safety(broker, tmp_path):
    buf = DiskBuffer(tmp_path / "outbox.sqlite")
    pub = MqttPublisher("127.0.0.1", broker.port, topic="t/threads", buffer=buf)
    sub = Subscriber(broker.port, "t/threads", client_id="sub-threads")
    seqs = iter(range(1, 201))
    lock = threading.Lock()

    def worker():
        for _ in range(50):
            with lock:
                seq = next(seqs)
                pub.publish({"seq": seq})

    threads = [threading.Thread(target=worker) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert pub.flush(timeout=30)
        assert sub.wait_for(set(range(1, 201))) == set(range(1, 201))
    finally:
        pub.close()
        sub.close()
