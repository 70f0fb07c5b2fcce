"""Inference for devices that cannot run the model: an image in over MQTT, a result back.

Topic convention (both protocol versions)::

    request   caltech-edge/infer/request/<device>/<correlation-id>    payload: JPEG/PNG bytes
    response  caltech-edge/infer/response/<device>/<correlation-id>   payload: JSON

An MQTT 5 client may instead set the *Response Topic* and *Correlation Data* properties;
the reply then goes to that topic (which must start with ``caltech-edge/infer/response/``,
so a request cannot make the cloud publish onto arbitrary topics) with the correlation
data copied. MQTT 3.1.1 clients have no properties and use the topic levels above.
Requests are bounded (``max_bytes``, the decoder's pixel limit); a malformed, oversized
or undecodable request gets ``{"error": ..., "status": 400|413}``, never a crash. The model
runs through :class:`~caltech_edge.runtime.predictor.EdgeModel`, the device runtime.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from .._registry import require
from ..errors import CaltechEdgeError

log = logging.getLogger(__name__)
REQUEST_PREFIX = "caltech-edge/infer/request/"
RESPONSE_PREFIX = "caltech-edge/infer/response/"
REQUEST_FILTER = REQUEST_PREFIX + "#"
MAX_REQUEST_BYTES = 2 * 1024 * 1024
_LEVEL = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RemoteInferenceError(CaltechEdgeError):
    """The cloud answered an inference request with an error, or did not answer in time."""


def request_topic(device: str, correlation: str) -> str:
    return f"{REQUEST_PREFIX}{device}/{correlation}"


def response_topic(device: str, correlation: str) -> str:
    return f"{RESPONSE_PREFIX}{device}/{correlation}"


class RemoteInference:
    """Answers requests with ``model`` in one worker thread (bounded queue, drops when full)."""

    def __init__(
        self, model: Any, *, max_bytes: int = MAX_REQUEST_BYTES, top_k: int = 5, max_queue: int = 64
    ) -> None:
        self.model, self.max_bytes, self.top_k = model, int(max_bytes), int(top_k)
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._publish: Callable[..., None] | None = None
        self.answered = self.errors = self.dropped = 0
        self._thread = threading.Thread(target=self._work, name="remote-infer", daemon=True)

    def wants(self, topic: str) -> bool:
        return topic.startswith(REQUEST_PREFIX)

    def start(self, publish: Callable[..., None]) -> None:
        self._publish = publish
        self._thread.start()

    def submit(self, msg: Any, ack: Callable[[], None] | None) -> None:
        try:
            self._queue.put_nowait(
                (msg.topic, bytes(msg.payload), getattr(msg, "properties", None))
            )
        except queue.Full:
            self.dropped += 1
        if ack is not None:  # requests are answered or dropped, never replayed after a restart
            ack()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                topic, payload, props = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.handle(topic, payload, props)
            except Exception:  # one bad request must not stop the service
                log.exception("remote inference failed on %s", topic)

    def handle(self, topic: str, payload: bytes, props: Any) -> None:
        correlation_id: str | None
        reply_to = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        levels = topic[len(REQUEST_PREFIX) :].split("/")
        if reply_to is None:
            if len(levels) != 2 or not all(_LEVEL.match(x) for x in levels):
                self.errors += 1
                log.warning(
                    "inference request on %s: no response topic and not <device>/<id>", topic
                )
                return  # nowhere to send an error to
            reply_to = response_topic(levels[0], levels[1])
            correlation_id = levels[1]
        else:
            correlation_id = (
                correlation.decode("utf-8", "replace") if isinstance(correlation, bytes) else None
            )
        if not reply_to.startswith(RESPONSE_PREFIX) or "#" in reply_to or "+" in reply_to:
            self.errors += 1
            log.warning("inference request on %s: response topic %r refused", topic, reply_to)
            return
        body = self.answer(payload)
        body.update({"correlation_id": correlation_id, "device": levels[0]})
        self.errors += "error" in body
        self.answered += "error" not in body
        out_props = None
        if correlation is not None:
            packet_types = require("paho.mqtt.packettypes", "mqtt")
            properties = require("paho.mqtt.properties", "mqtt")
            out_props = properties.Properties(packet_types.PacketTypes.PUBLISH)
            out_props.CorrelationData = correlation
        assert self._publish is not None
        self._publish(reply_to, json.dumps(body, separators=(",", ":")).encode("utf-8"), out_props)

    def answer(self, payload: bytes) -> dict[str, Any]:
        """The JSON reply to one request body (an error dict for bad input)."""
        from ..data.imageheader import sniff
        from ..runtime.serve.app import HttpError, decode_body

        if len(payload) > self.max_bytes:
            return {
                "error": f"image of {len(payload)} bytes is over the {self.max_bytes} byte limit",
                "status": 413,
            }
        if sniff(payload[:16]) not in ("jpeg", "png"):
            return {"error": "the request body must be JPEG or PNG bytes", "status": 400}
        try:
            frame = decode_body(payload)
            result = self.model.predict(frame, top_k=self.top_k)
        except HttpError as exc:
            return {"error": str(exc), "status": exc.status}
        except CaltechEdgeError as exc:
            return {"error": str(exc), "status": 400}
        return {k: result[k] for k in ("predictions", "model", "latency_ms", "timestamp")}

    def stats(self) -> dict[str, int]:
        return {"answered": self.answered, "errors": self.errors, "dropped": self.dropped}

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def remote_predict(
    image: bytes,
    *,
    host: str,
    port: int = 1883,
    device: str,
    timeout: float = 30.0,
    mqtt5: bool = True,
) -> dict[str, Any]:
    """The device side: send ``image`` (JPEG/PNG bytes), wait for the cloud's prediction.

    MQTT 5 uses the Response Topic / Correlation Data properties; ``mqtt5=False`` uses
    the 3.1.1 topic convention. Raises :class:`RemoteInferenceError` on an error reply
    or when nothing comes back within ``timeout``.
    """
    mqtt = require("paho.mqtt.client", "mqtt", purpose="remote inference")
    correlation = uuid.uuid4().hex
    reply = response_topic(device, correlation)
    got, box = threading.Event(), {}  # type: threading.Event, dict[str, Any]
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"{device}-remote-{correlation[:8]}",
        protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
    )
    subscribed = threading.Event()

    def on_message(c: Any, userdata: Any, msg: Any) -> None:
        box["body"], box["props"] = msg.payload, getattr(msg, "properties", None)
        got.set()

    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    try:
        client.connect(host, int(port), keepalive=30)
    except OSError as exc:
        raise RemoteInferenceError(f"cannot reach the MQTT broker {host}:{port} ({exc})") from exc
    client.loop_start()
    try:
        client.subscribe(reply, qos=1)
        subscribed.wait(10)
        if mqtt5:
            props = require("paho.mqtt.properties", "mqtt").Properties(
                require("paho.mqtt.packettypes", "mqtt").PacketTypes.PUBLISH
            )
            props.ResponseTopic, props.CorrelationData = reply, correlation.encode()
            client.publish(REQUEST_PREFIX + device, image, qos=1, properties=props)
        else:
            client.publish(request_topic(device, correlation), image, qos=1)
        started = time.monotonic()
        if not got.wait(timeout):
            raise RemoteInferenceError(f"no inference reply within {timeout:.0f} s on {reply}")
    finally:
        client.loop_stop()
        client.disconnect()
    body = json.loads(box["body"].decode("utf-8"))
    body["round_trip_ms"] = round((time.monotonic() - started) * 1e3, 1)
    if (
        mqtt5
        and getattr(box["props"], "CorrelationData", correlation.encode()) != correlation.encode()
    ):
        raise RemoteInferenceError("reply carries another request's correlation data")
    if "error" in body:
        raise RemoteInferenceError(
            "cloud refused the request ({}): {}".format(body.get("status"), body["error"])
        )
    return body
