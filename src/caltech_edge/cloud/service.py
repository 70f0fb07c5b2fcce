"""The cloud process: MQTT in, rules applied, durable, acknowledged only after the commit.

:class:`CloudService` connects with MQTT 5, ``clean_start=False`` and a long session
expiry under a fixed client id, subscribes at QoS 1 and acknowledges each message
manually (paho ``manual_ack``) only after the batch it belongs to is committed in
:class:`~caltech_edge.cloud.store.CloudStore`. A broker restart (persistent session) or a
crash of this process (unacknowledged messages are redelivered) therefore loses nothing,
and the ``seen`` ledger drops what was already handled: at-least-once in, once out.
Uploaded captures enter the same queue (:meth:`ingest`), so rules see them as events on
``caltech-edge/captures/<device>``. Inference requests go to a separate worker
(:mod:`caltech_edge.cloud.remote`) so a slow model never delays storage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from .._registry import require
from .remote import REQUEST_FILTER, RemoteInference
from .rules import Context, Rule, before_commit, evaluate, rule_stats, run_actions
from .store import CloudStore

log = logging.getLogger(__name__)
SESSION_EXPIRY_S = 7 * 24 * 3600
BATCH = 64
CAPTURE_TOPIC = "caltech-edge/captures/{}"

Item = tuple[str, bytes, Callable[[], None] | None]  # topic, payload, ack


def message_key(doc: Any, topic: str, payload: bytes) -> tuple[str, str]:
    """(device, key) for de-duplication: the payload's device and seq, else content hash."""
    device = str(doc.get("device")) if isinstance(doc, dict) and doc.get("device") else topic
    if isinstance(doc, dict) and isinstance(doc.get("seq"), int):
        return device, str(doc["seq"])
    if isinstance(doc, dict) and doc.get("dedup_key"):
        return device, str(doc["dedup_key"])
    return device, "sha256:" + hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()


class CloudService:
    def __init__(
        self,
        rules: list[Rule],
        store: CloudStore,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        client_id: str = "caltech-edge-cloud",
        remote: RemoteInference | None = None,
    ) -> None:
        self.rules, self.store, self.remote = rules, store, remote
        self.host, self.port, self.client_id = host, int(port), client_id
        self._queue: queue.Queue = queue.Queue(maxsize=10000)
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self.processed = self.duplicates = self.bad = 0
        self._busy = False
        self._worker = threading.Thread(target=self._work, name="cloud-rules", daemon=True)
        self._client: Any = None  # -- MQTT -----------------------------------------------------------------------------

    def start(self) -> CloudService:
        mqtt = require("paho.mqtt.client", "mqtt", purpose="the cloud rules process")
        props = require("paho.mqtt.properties", "mqtt")
        packet_types = require("paho.mqtt.packettypes", "mqtt")
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        connect_props = props.Properties(packet_types.PacketTypes.CONNECT)
        connect_props.SessionExpiryInterval = SESSION_EXPIRY_S
        filters = sorted({r.query.topic_filter for r in self.rules})

        def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, p: Any) -> None:
            if getattr(reason, "is_failure", False):
                log.warning("cloud: connect refused: %s", reason)
                return
            subs = [(f, mqtt.SubscribeOptions(qos=1)) for f in filters]
            if self.remote is not None:
                subs.append((REQUEST_FILTER, mqtt.SubscribeOptions(qos=1)))
            c.subscribe(subs)

        client.on_connect = on_connect
        client.on_subscribe = lambda *a: self._subscribed.set()
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=4)
        client.connect_async(
            self.host, self.port, keepalive=30, clean_start=False, properties=connect_props
        )
        self._client = client
        self._worker.start()
        if self.remote is not None:
            self.remote.start(self._publish_raw)
        client.loop_start()
        return self

    def wait_ready(self, timeout: float = 10.0) -> bool:
        return self._subscribed.wait(timeout)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        ack = (lambda m=msg.mid, q=msg.qos: client.ack(m, q)) if msg.qos > 0 else None
        if self.remote is not None and self.remote.wants(msg.topic):
            self.remote.submit(msg, ack)
            return
        self._queue.put((msg.topic, bytes(msg.payload), ack))

    def _publish_raw(self, topic: str, data: bytes, properties: Any = None) -> None:
        if self._client is not None:
            self._client.publish(topic, data, qos=1, properties=properties)

    def ingest(self, topic: str, doc: dict[str, Any]) -> None:
        """Feed an event that did not come over MQTT (an uploaded capture) to the rules."""
        self._queue.put((topic, json.dumps(doc, separators=(",", ":")).encode("utf-8"), None))

    # -- rules worker ---------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                batch = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            self._busy = True
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self.process_batch(batch)
            except Exception:  # nothing acked: the broker redelivers after a reconnect
                log.exception("cloud: batch failed; it will be redelivered")
                self._busy = False
                continue
            for _, _, ack in batch:
                if ack is not None:
                    ack()
            self._busy = False

    def process_batch(self, batch: list[Item]) -> None:
        """Apply the rules to each message and commit them all at once (then ack)."""
        with self.store.lock:
            self.store.begin()
            try:
                for topic, payload, _ in batch:
                    self._process(topic, payload)
                before_commit(self.rules)
                self.store.commit()
            except BaseException:
                before_commit(self.rules, failed=True)
                self.store.rollback()
                raise

    def _process(self, topic: str, payload: bytes) -> None:
        try:
            doc = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.bad += 1
            self.store.add_failure("", topic, "", "parse", "payload is not JSON")
            return
        device, key = message_key(doc, topic, payload)
        if self.store.was_seen(device, key):
            self.duplicates += 1
            return
        for rule, event in evaluate(self.rules, doc, topic):
            ctx = Context(rule.name, topic, device, key, self.store, self._publish_raw)
            run_actions(rule, event, ctx)
        self.store.mark_seen(device, key)
        self.processed += 1

    def idle(self, timeout: float = 30.0) -> bool:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and not self._busy:
                return True
            time.sleep(0.05)
        return False

    def stats(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "duplicates": self.duplicates,
            "bad": self.bad,
            "rules": rule_stats(self.rules),
            "remote": self.remote.stats() if self.remote is not None else None,
        }

    def close(self) -> None:
        self._stop.set()
        if self._worker.is_alive():
            self._worker.join(timeout=10)
        if self.remote is not None:
            self.remote.close()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
