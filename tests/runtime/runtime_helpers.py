"""Helpers for the runtime tests: a real Mosquitto broker, a paho subscriber, a video, the CLI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def write_video(path: Path, frames: int, *, size=(96, 72), fps: float = 20.0) -> Path:
    """An MJPG .avi with moving colour blocks (what a camera would see)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write MJPG video here")
    w, h = size
    for i in range(frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = ((i * 7) % 255, (i * 13) % 255, (i * 29) % 255)
        x = (i * 3) % (w - 20)
        cv2.rectangle(img, (x, 10), (x + 20, 40), (0, 0, 255) if i % 2 else (255, 0, 0), -1)
        writer.write(img)
    writer.release()
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A real Mosquitto on a loopback port with its own config; stop()/start() keep the port.

    Persistence is on, so a subscriber's persistent session (and its queued QoS 1
    messages) survives a broker restart, as on a production broker.
    """

    def __init__(self, root: Path, *, tls: dict | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # started as root, mosquitto drops to user "mosquitto", which cannot read the
            # test's private temp dir (certificates, persistence file, log): stay root then
            *(["user root"] if os.geteuid() == 0 else []),
            "persistence true",
            f"persistence_location {root}/",
            "autosave_interval 1",
            f"log_dest file {root}/mosquitto.log",
        ]
        if tls:
            lines += [
                f"cafile {tls['ca']}",
                f"certfile {tls['cert']}",
                f"keyfile {tls['key']}",
                "require_certificate true",
            ]
        self.config = root / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config), "-v"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    log = (
                        (self.root / "mosquitto.log").read_text()
                        if (self.root / "mosquitto.log").exists()
                        else ""
                    )
                    raise RuntimeError(f"mosquitto exited: {log}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def need_mosquitto() -> None:
    if not Path(MOSQUITTO).exists():
        reason = "mosquitto is not installed: sudo apt-get install -y mosquitto (or make mosquitto)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


class Subscriber:
    """A paho subscriber with a persistent session (QoS 1) collecting payloads."""

    def __init__(self, port: int, topic: str, *, client_id: str = "test-subscriber") -> None:
        import json
        import threading

        import paho.mqtt.client as mqtt

        self.messages: list[dict] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )

        def on_connect(client, userdata, flags, reason, props):
            client.subscribe(topic, qos=1)

        def on_subscribe(client, userdata, mid, reasons, props):
            self._subscribed.set()

        def on_message(client, userdata, msg):
            with self._lock:
                self.messages.append(json.loads(msg.payload))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("subscriber did not subscribe")

    def seqs(self) -> list[int]:
        with self._lock:
            return [m["seq"] for m in self.messages]

    def wait_for(self, expected: set[int], timeout: float = 30.0) -> set[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = set(self.seqs())
            if expected <= got:
                return got
            time.sleep(0.05)
        return set(self.seqs())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_cli(
    *args: str, timeout: float = 120, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``caltech-edge ARGS`` in a subprocess (the real entry point)."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from caltech_edge.cli import main; sys.exit(main())",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def shared_sample_images(n: int) -> list[Path]:
    """A few real Caltech-256 sample JPEGs when ../shared/data is present, else []."""
    root = Path(
        os.environ.get(
            "CALTECH_EDGE_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"
        )
    )
    sample = root / "caltech256-sample"
    if not sample.is_dir():
        return []
    return sorted(sample.glob("*/*.jpg"))[:: max(1, 533 // n)][:n]
