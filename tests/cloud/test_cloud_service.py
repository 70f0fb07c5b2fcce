"""Rules on a real broker: store, republish, handler; de-dup; nothing lost across restarts."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
from runtime_helpers import Subscriber

from caltech_edge.cloud.rules import load_rules
from caltech_edge.cloud.service import CloudService
from caltech_edge.cloud.store import CloudStore


def _payload(seq: int, p: float, device: str = "cam-1") -> bytes:
    doc = {"schema_version": 1, "seq": seq, "device": device, "model": {"hash": "h1"},
           "predictions": [{"label": "001.red", "index": 0, "probability": p}]}  # fmt: skip
    return json.dumps(doc).encode()


def _publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-device")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _send(client: mqtt.Client, items) -> None:
    for seq, p in items:
        client.publish("$aws/things/cam-1/infer", _payload(seq, p), qos=1).wait_for_publish(10)


def _service(rules_file, tmp_path, broker) -> CloudService:
    store = CloudStore(tmp_path / "state" / "cloud.sqlite")
    service = CloudService(load_rules(rules_file), store, port=broker.port).start()
    assert service.wait_ready(10)
    return service


def _wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_rules_store_republish_handler_and_dedup(rules_file, tmp_path, broker):
    alerts = Subscriber(broker.port, "alerts/#", client_id="alerts")
    service = _service(rules_file, tmp_path, broker)
    device = _publisher(broker.port)
    try:
        _send(device, [(1, 0.9), (2, 0.3), (3, 0.2), (2, 0.3), (4, 0.95)])  # seq 2 delivered twice
        assert _wait(lambda: service.store.count("seen") == 4)
        assert service.idle(10)
    finally:
        device.disconnect()
        service.close()
    all_rows = service.store.events("all_results")
    assert [r["key"] for r in all_rows] == ["1", "2", "3", "4"] and service.duplicates == 1
    low = service.store.events("low_confidence")
    assert [(r["event"]["seq"], r["event"]["p"]) for r in low] == [(2, 0.3), (3, 0.2)]
    assert low[0]["event"]["model_hash"] == "h1"
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [x["event"]["seq"] for x in lines] == [1, 2, 3, 4]
    calls = [json.loads(x) for x in (tmp_path / "handler.log").read_text().splitlines()]
    assert [c["event"]["seq"] for c in calls] == [2, 3]  # seq 3 failed once, retried
    assert calls[0]["request"] == "cam-1:2" and calls[0]["rule"] == "low_confidence"
    assert service.store.count("failures") == 0
    assert _wait(lambda: sorted(alerts.seqs()) == [2, 3])
    alerts.close()


def test_nothing_lost_across_cloud_and_broker_restart(rules_file, tmp_path, broker):
    service = _service(rules_file, tmp_path, broker)
    device = _publisher(broker.port)
    _send(device, [(1, 0.9), (2, 0.9)])
    assert _wait(lambda: service.store.count("seen") == 2)
    service.close()  # the cloud process goes away; its session stays on the broker
    service.store.close()
    _send(device, [(3, 0.9), (4, 0.4), (5, 0.9)])  # queued for the offline session
    device.disconnect()
    device.loop_stop()
    time.sleep(1.5)  # autosave_interval 1: the queue reaches mosquitto.db
    broker.stop()
    broker.start()  # ... and survives a broker restart
    device = _publisher(broker.port)
    _send(device, [(6, 0.9), (2, 0.9)])  # a new one, and an old duplicate
    again = _service(rules_file, tmp_path, broker)
    try:
        assert _wait(lambda: again.store.count("seen") == 6)
        assert again.idle(10)
        keys = [r["key"] for r in again.store.events("all_results")]
        assert sorted(keys, key=int) == ["1", "2", "3", "4", "5", "6"]
        assert [r["event"]["seq"] for r in again.store.events("low_confidence")] == [4]
    finally:
        device.disconnect()
        again.close()


def test_killed_cloud_process_loses_nothing_and_stores_nothing_twice(rules_file, tmp_path, broker):
    """SIGKILL mid-stream: unacknowledged messages come back, the ledger drops repeats."""
    import signal
    import subprocess
    import sys

    def start() -> subprocess.Popen:
        log = open(tmp_path / "cloud.log", "a")  # noqa: SIM115 - handed to the child
        return subprocess.Popen(
            [sys.executable, "-c", "import sys; from caltech_edge.cli import main; sys.exit(main())",
             "cloud", "--rules", str(rules_file), "--state", str(tmp_path / "state"),
             "--mqtt-port", str(broker.port)],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip

    def seen() -> int:
        db = tmp_path / "state" / "cloud.sqlite"
        if not db.exists():
            return 0
        import sqlite3

        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return int(con.execute("SELECT COUNT(*) FROM seen").fetchone()[0])
        except sqlite3.OperationalError:
            return 0
        finally:
            con.close()

    cloud = start()
    assert _wait(lambda: '"ready": true' in (tmp_path / "cloud.log").read_text())
    device = _publisher(broker.port)
    n = 1000
    for seq in range(1, n + 1):
        device.publish("$aws/things/cam-1/infer", _payload(seq, 0.9), qos=1)
    assert _wait(lambda: seen() >= 20)
    cloud.send_signal(signal.SIGKILL)  # no clean shutdown, no final acks
    cloud.wait(timeout=10)
    killed_at = seen()
    cloud = start()
    try:
        assert _wait(lambda: seen() == n, timeout=60), (killed_at, seen())
        time.sleep(1.0)  # anything redelivered after the count is reached is dropped, not stored
        store = CloudStore(tmp_path / "state" / "cloud.sqlite")
        keys = [r["key"] for r in store.events("all_results")]
        assert sorted(keys, key=int) == [str(i) for i in range(1, n + 1)]  # each exactly once
        store.close()
    finally:
        cloud.send_signal(signal.SIGTERM)
        cloud.wait(timeout=30)
        device.disconnect()
    assert 0 < killed_at < n  # the kill happened while messages were flowing
