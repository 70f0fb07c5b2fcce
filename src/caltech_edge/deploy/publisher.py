"""The cloud side of a deployment: pack, serve, publish the job, collect device statuses.

What ``caltech-edge deploy`` does. Notifications are retained QoS 1 messages, so a device
that is offline gets the job when it comes back; once every targeted device reported a
terminal status the retained notification is cleared (an empty retained message).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .._registry import require
from ..errors import ConfigError
from ..runtime.predictor import load_model
from . import job as jobs
from .artifact import DeploymentError, pack
from .server import ArtifactServer

_ENTRY_PATTERNS = ("*.onnx", "*.xml", "*-symbol.json")


def resolve_artifact(path: Path) -> Path:
    """A model file, or the entry model file of an export/bundle folder."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for pattern in _ENTRY_PATTERNS:
            found = sorted(path.glob(pattern)) or sorted(path.glob("*/" + pattern))
            if found:
                return found[0]
    raise ConfigError(f"{path}: not a model file or a folder holding .onnx/.xml/-symbol.json")


class StatusCollector:
    """Subscribes to the job's update topics and keeps each device's latest status."""

    def __init__(self, client: Any, job_id: str) -> None:
        self.job_id = job_id
        self.latest: Dict[str, Dict[str, Any]] = {}
        self.updates: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        client.message_callback_add(jobs.update_topic("+", job_id), self._on_update)

    def _on_update(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            body = json.loads(msg.payload.decode("utf-8"))
        except ValueError:
            return
        with self._lock:
            self.updates.append(body)
            self.latest[str(body.get("thingName"))] = body

    def terminal(self, things: Sequence[str]) -> bool:
        with self._lock:
            return all(self.latest.get(t, {}).get("status") in jobs.TERMINAL for t in things)


def deploy(
    artifact: Path,
    *,
    things: Sequence[str],
    groups: Sequence[str] = (),
    host: str,
    port: int = 1883,
    url: Optional[str] = None,
    serve_host: str = "127.0.0.1",
    serve_port: int = 0,
    wait: float = 600.0,
    work_dir: Optional[Path] = None,
    job_id: Optional[str] = None,
) -> Dict[str, Any]:
    """Publish a deployment of ``artifact`` to ``things``/``groups``; wait for their verdicts."""
    if not things and not groups:
        raise ConfigError("deploy needs at least one --device or --group")
    model_path = resolve_artifact(artifact)
    card = load_model(model_path).card
    shipped, entry = pack(model_path, work_dir or model_path.parent)
    server = None
    if url is None:
        server = ArtifactServer(serve_host, serve_port).start()
        url = server.add(shipped)
    document = jobs.make_job(shipped, entry, model_path, card, url=url, job_id=job_id)
    mqtt = require("paho.mqtt.client", "mqtt", purpose="publishing deployments")
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="caltech-edge-deploy-" + document["jobId"][-8:]
    )
    collector = StatusCollector(client, document["jobId"])
    subscribed = threading.Event()
    client.on_connect = lambda c, *a: c.subscribe(jobs.update_topic("+", document["jobId"]), qos=1)
    client.on_subscribe = lambda *a: subscribed.set()
    try:
        client.connect(host, int(port), keepalive=30)
    except OSError as exc:
        raise DeploymentError(f"cannot reach the MQTT broker {host}:{port} ({exc})") from exc
    client.loop_start()
    topics = [jobs.notify_topic(t) for t in things] + [jobs.group_topic(g) for g in groups]
    try:
        subscribed.wait(10)
        for topic in topics:
            client.publish(topic, jobs.notification(document), qos=1, retain=True).wait_for_publish(
                10
            )
        deadline = time.monotonic() + float(wait)
        while things and time.monotonic() < deadline and not collector.terminal(things):
            time.sleep(0.1)
        done = bool(things) and collector.terminal(things)
        if done or server is not None:
            for topic in topics:  # finished (or its artifact is going away): stop offering it
                client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()
        if server is not None:
            server.close()
    statuses = {t: collector.latest.get(t, {}).get("status", "NO_RESPONSE") for t in things}
    return {
        "job": document,
        "statuses": statuses,
        "details": {t: collector.latest.get(t, {}).get("statusDetails", {}) for t in things},
        "succeeded": bool(things) and all(s == "SUCCEEDED" for s in statuses.values()),
    }
