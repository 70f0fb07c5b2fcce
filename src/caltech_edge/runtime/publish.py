"""Where results go: MQTT (AWS IoT Core), Greengrass, a JSON-lines file, stdout.

Every publisher takes the same versioned payload dict (``runtime.payload``) that already
carries its sequence id. :class:`MqttPublisher` never sends straight from the caller: the
payload is first committed to a :class:`~caltech_edge.runtime.buffer.DiskBuffer`, a sender
thread hands buffered messages to paho in sequence order while connected, and a message
leaves the buffer only when the broker's PUBACK arrives. A broker outage, a network loss
or a process restart therefore loses nothing; at worst a message arrives twice (same
``seq``), which consumers drop.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Deque, Dict, List, Optional, Union

from .._registry import require
from ..errors import ConfigError
from .buffer import DiskBuffer
from .payload import encode

try:  # Python 3.8 has typing.Protocol
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore

log = logging.getLogger(__name__)


def default_topic(thing: str) -> str:
    """The topic DeepLens projects published to: ``$aws/things/<thing>/infer``."""
    return "$aws/things/{}/infer".format(thing)


class Publisher(Protocol):
    """Sends payload dicts somewhere; ``flush`` waits until everything is delivered."""

    def publish(self, payload: Dict[str, Any]) -> None: ...

    def flush(self, timeout: float = 10.0) -> bool: ...

    def close(self) -> None: ...

    def stats(self) -> Dict[str, Any]: ...


class StreamPublisher:
    """One JSON line per payload on a text stream (stdout for ``--json``)."""

    def __init__(self, stream: Optional[IO[str]] = None) -> None:
        self._stream = stream
        self.sent = 0

    def publish(self, payload: Dict[str, Any]) -> None:
        stream = self._stream or sys.stdout
        stream.write(json.dumps(payload, separators=(",", ":")) + "\n")
        stream.flush()
        self.sent += 1

    def flush(self, timeout: float = 10.0) -> bool:
        return True

    def close(self) -> None:
        self.flush()

    def stats(self) -> Dict[str, Any]:
        return {"kind": "stdout", "sent": self.sent}


class FilePublisher:
    """Appends JSON lines to a file; ``fsync=True`` makes each line durable before returning."""

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(str(self.path), "ab")  # noqa: SIM115 - kept open for the run, closed in close()
        self._fsync = fsync
        self.sent = 0

    def publish(self, payload: Dict[str, Any]) -> None:
        self._fh.write(encode(payload) + b"\n")
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())
        self.sent += 1

    def flush(self, timeout: float = 10.0) -> bool:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        return True

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()

    def stats(self) -> Dict[str, Any]:
        return {"kind": "file", "path": str(self.path), "sent": self.sent}


class GreengrassPublisher:
    """Publishes through the Greengrass core (``greengrasssdk``), which spools and retries."""

    def __init__(self, topic: str) -> None:
        sdk = require("greengrasssdk", "greengrass", purpose="publishing inside Greengrass")
        self._client = sdk.client("iot-data")
        self.topic = topic
        self.sent = 0

    def publish(self, payload: Dict[str, Any]) -> None:
        self._client.publish(topic=self.topic, payload=json.dumps(payload))
        self.sent += 1

    def flush(self, timeout: float = 10.0) -> bool:
        return True

    def close(self) -> None:
        return None

    def stats(self) -> Dict[str, Any]:
        return {"kind": "greengrass", "topic": self.topic, "sent": self.sent}


@dataclass(frozen=True)
class TlsConfig:
    """Mutual TLS as AWS IoT Core requires: the Amazon root CA, the thing's cert and key."""

    ca_certs: str
    certfile: Optional[str] = None
    keyfile: Optional[str] = None

    def __post_init__(self) -> None:
        for name in ("ca_certs", "certfile", "keyfile"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise ConfigError(
                    "TLS {} {!r} does not exist; for AWS IoT download the root CA and the "
                    "thing's certificate and private key from the IoT console".format(name, value)
                )
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("a TLS client certificate needs its key and vice versa")


def check_broker(host: str, port: int) -> None:
    """Refuse a broker address that can never work, with the option to fix in the message.

    A port outside 1-65535 or a host name the resolver says does not exist is a typo, not
    an outage; a *temporary* resolver failure (no network yet at boot) is only logged,
    because the outbox keeps every result until the broker is reachable.
    """
    if not 1 <= int(port) <= 65535:
        raise ConfigError(
            "--mqtt-port {} is not a TCP port; use 1-65535 (1883, or 8883 for TLS)".format(port)
        )
    try:
        socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == getattr(socket, "EAI_AGAIN", -3):
            log.warning("MQTT host %r cannot be resolved yet (%s); buffering results", host, exc)
            return
        raise ConfigError(
            "--mqtt-host {!r} cannot be resolved ({}); check the name or give an IP address".format(
                host, exc.strerror or exc
            )
        ) from None


class MqttPublisher:
    """QoS 1 MQTT with an on-disk outbox: in order, removed only on PUBACK, reconnecting."""

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        topic: str,
        buffer: DiskBuffer,
        client_id: str = "",
        tls: Optional[TlsConfig] = None,
        keepalive: int = 30,
        window: int = 64,
        reconnect_max_delay: int = 16,
        username: Optional[str] = None,
        password: Optional[str] = None,
    ) -> None:
        mqtt = require("paho.mqtt.client", "mqtt", purpose="MQTT publishing")
        if not topic or "#" in topic or "+" in topic:
            raise ConfigError("MQTT topic {!r} must be non-empty without wildcards".format(topic))
        self.host, self.port, self.topic = host, int(port), topic
        self.buffer = buffer
        self.window = max(1, int(window))
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or "caltech-edge-{}".format(os.getpid()),
            clean_session=True,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls is not None:
            self._client.tls_set(
                ca_certs=tls.ca_certs,
                certfile=tls.certfile,
                keyfile=tls.keyfile,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self._client.max_inflight_messages_set(self.window)
        self._client.reconnect_delay_set(min_delay=1, max_delay=int(reconnect_max_delay))
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        # paho callbacks only touch these thread-safe primitives (never our locks/SQLite):
        self._acks: Deque[int] = collections.deque()
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._inflight = {}  # type: Dict[int, int]  # paho mid -> seq (sender thread only)
        self._last_handed = 0  # highest seq handed to paho in this process
        self.connects = 0
        self.published = 0
        self.acked = 0
        self._client.connect_async(self.host, self.port, keepalive=int(keepalive))
        self._client.loop_start()
        self._sender = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)
        self._sender.start()

    # -- paho network thread ------------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT connect to %s:%s refused: %s", self.host, self.port, reason)
            return
        self.connects += 1
        self._connected.set()
        self._wake.set()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        log.warning(
            "MQTT connect to %s:%s failed (broker down or unreachable); buffering, retrying",
            self.host,
            self.port,
        )

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning(
                "MQTT disconnected from %s:%s (%s); buffering", self.host, self.port, reason
            )

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._acks.append(mid)
        self._wake.set()

    # -- sender thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._pump()
            except Exception:  # keep sending after a transient SQLite/socket error
                log.exception("MQTT sender error; retrying")
                time.sleep(0.5)

    def _pump(self) -> None:
        while self._acks:
            seq = self._inflight.pop(self._acks.popleft(), None)
            if seq is not None:
                self.buffer.remove(seq)
                self.acked += 1
        if not self._connected.is_set():
            return
        room = self.window - len(self._inflight)
        if room <= 0:
            return
        for seq, topic, data in self.buffer.pending(after=self._last_handed, limit=room):
            info = self._client.publish(topic, data, qos=1)
            # paho keeps a QoS 1 message it could not send and resends it on reconnect
            self._inflight[info.mid] = seq
            self._last_handed = seq
            self.published += 1

    # -- caller side ----------------------------------------------------------------------
    def publish(self, payload: Dict[str, Any]) -> None:
        """Commit to the outbox (a refused result is logged and counted there), then wake."""
        self.buffer.put(int(payload["seq"]), self.topic, encode(payload))
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the buffer is empty (every message acknowledged) or ``timeout``."""
        deadline = time.monotonic() + float(timeout)
        while time.monotonic() < deadline:
            if len(self.buffer) == 0:
                return True
            self._wake.set()
            time.sleep(0.02)
        return len(self.buffer) == 0

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._sender.join(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()

    def stats(self) -> Dict[str, Any]:
        out = {
            "kind": "mqtt",
            "broker": "{}:{}".format(self.host, self.port),
            "topic": self.topic,
            "connected": self.connected,
            "connects": self.connects,
            "handed_to_client": self.published,
            "acked": self.acked,
        }  # type: Dict[str, Any]
        out["buffer"] = self.buffer.stats()
        return out


def close_all(publishers: List[Any], *, timeout: float = 10.0) -> bool:
    """Flush then close every publisher; True when all of them delivered everything."""
    ok = True
    for pub in publishers:
        ok = bool(pub.flush(timeout)) and ok
    for pub in publishers:
        pub.close()
    return ok
