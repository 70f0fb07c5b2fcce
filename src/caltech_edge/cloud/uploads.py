"""Captured frames from devices to the cloud's review area, over HTTP PUT.

Why HTTP PUT of whole files rather than MQTT chunks: a capture is one JPEG (tens of KB,
capped by ``max_bytes``), far below what one request carries comfortably, and a PUT to a
name-addressed URL with the content's sha256 is *idempotent*: repeating it after a lost
reply stores nothing twice (same hash -> 200 "exists", another hash -> 409). Resuming is
per file: ``HEAD`` tells whether a file already arrived, and the device deletes its local
copy only after a reply that echoes the right sha256, so an interrupted batch continues
where it stopped. MQTT chunks would need reassembly state on the cloud for no gain here.

Layout on the cloud: ``REVIEW/<device>/<NNN.class>/<name>.jpg`` plus
``REVIEW/<device>/.predictions/<NNN.class>/<name>.json`` — the device's capture layout,
which ``caltech-edge data review`` reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, atomic_write_text, sha256_file
from ..data.imageheader import sniff
from ..data.imageio import ImageDecodeError, decode_image
from ..runtime.payload import now_iso

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_META_BYTES = 16 * 1024
_SEGMENT = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,127}$")
Sink = Callable[[str, dict[str, Any]], None]


class _Handler(BaseHTTPRequestHandler):
    server_version = "caltech-edge-uploads/1"
    timeout = 30

    def log_message(self, fmt: str, *args: object) -> None:
        return None

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _target(self) -> tuple | None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 4 or parts[0] != "captures" or not parts[3].endswith(".jpg"):
            return None
        if not all(_SEGMENT.match(p) for p in parts[1:]):
            return None
        return parts[1], parts[2], parts[3][: -len(".jpg")]

    def do_HEAD(self) -> None:
        target = self._target()
        root: Path = getattr(self.server, "root")  # noqa: B009 - set by UploadServer
        path = root / target[0] / target[1] / (target[2] + ".jpg") if target else None
        if path is None or not path.is_file():
            self._reply(404, {"error": "not uploaded"})
            return
        self.send_response(200)
        self.send_header("X-Content-SHA256", sha256_file(path))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self) -> None:
        server: Any = self.server
        if not server.slots.acquire(timeout=5):
            self._reply(503, {"error": "busy, retry later"})
            return
        try:
            status, body = self._put(server)
        finally:
            server.slots.release()
        self._reply(status, body)

    def _put(self, server: Any) -> tuple:
        target = self._target()
        if target is None:
            return 400, {"error": "PUT /captures/<device>/<NNN.class>/<name>.jpg"}
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return 411, {"error": "Content-Length required"}
        if length > server.max_bytes or length <= 0:
            return 413, {"error": f"body of {length} bytes; limit {server.max_bytes}"}
        want = (self.headers.get("X-Content-SHA256") or "").lower()
        meta_raw = self.headers.get("X-Capture-Meta") or ""
        if len(meta_raw) > MAX_META_BYTES:
            return 413, {"error": f"X-Capture-Meta over {MAX_META_BYTES} bytes"}
        data = self.rfile.read(length)
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != length or digest != want:
            return 400, {"error": f"body sha256 {digest[:12]} does not match X-Content-SHA256"}
        if sniff(data[:16]) != "jpeg":
            return 415, {"error": "captures are JPEG files"}
        try:  # the library's one decoder: refuses truncated files and decompression bombs
            decode_image(data, name="upload")
        except ImageDecodeError as exc:
            return 415, {"error": f"not a usable JPEG: {exc.reason}"}
        try:
            meta = (
                json.loads(base64.urlsafe_b64decode(meta_raw.encode()).decode("utf-8"))
                if meta_raw
                else {}
            )
        except ValueError:
            return 400, {"error": "X-Capture-Meta is not base64 JSON"}
        device, folder, name = target
        path = server.root / device / folder / (name + ".jpg")
        if path.is_file():
            have = sha256_file(path)
            return (
                (200, {"status": "exists", "sha256": have})
                if have == digest
                else (409, {"error": "another file has this name"})
            )
        meta = dict(
            meta if isinstance(meta, dict) else {},
            sha256=digest,
            device=device,
            uploaded=now_iso(),
            image=f"{folder}/{name}.jpg",
        )
        with server.lock:
            atomic_write_text(
                server.root / device / ".predictions" / folder / (name + ".json"),
                json.dumps(meta, indent=1),
            )
            atomic_write_bytes(path, data)
        if server.sink is not None:
            server.sink(
                "caltech-edge/captures/" + device, dict(meta, dedup_key="capture:" + digest)
            )
        return 201, {"status": "stored", "sha256": digest}


class UploadServer:
    """``PUT /captures/...`` into ``root``; loopback by default, bounded, with timeouts."""

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_bytes: int = MAX_UPLOAD_BYTES,
        max_connections: int = 8,
        sink: Sink | None = None,
    ) -> None:
        self.httpd = ThreadingHTTPServer((host, int(port)), _Handler)
        self.httpd.daemon_threads = True
        httpd: Any = self.httpd
        httpd.root, httpd.max_bytes, httpd.sink = Path(root), int(max_bytes), sink
        httpd.slots, httpd.lock = (
            threading.BoundedSemaphore(max(1, max_connections)),
            threading.Lock(),
        )
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="uploads", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> UploadServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def upload_captures(
    capture_dir: Path, url: str, *, device: str, timeout: float = 30.0
) -> dict[str, int]:
    """PUT every capture under ``capture_dir``; delete each local copy once acknowledged."""
    capture_dir = Path(capture_dir)
    counts = {"uploaded": 0, "already": 0, "failed": 0}
    for image in sorted(
        p for p in capture_dir.glob("*/*.jpg") if not p.parent.name.startswith(".")
    ):
        meta_path = capture_dir / ".predictions" / image.parent.name / (image.stem + ".json")
        meta = meta_path.read_bytes() if meta_path.is_file() else b"{}"
        data = image.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        req = urllib.request.Request(
            "{}/captures/{}/{}/{}".format(url.rstrip("/"), device, image.parent.name, image.name),
            data=data,
            method="PUT",
            headers={
                "X-Content-SHA256": digest,
                "X-Capture-Meta": base64.urlsafe_b64encode(meta).decode(),
                "Content-Type": "image/jpeg",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                reply = json.loads(resp.read().decode("utf-8"))
                status = resp.status
        except (urllib.error.URLError, OSError, ValueError):
            counts["failed"] += 1  # kept locally; the next run retries it
            continue
        if reply.get("sha256") != digest:
            counts["failed"] += 1
            continue
        counts["uploaded" if status == 201 else "already"] += 1
        image.unlink()
        if meta_path.is_file():
            meta_path.unlink()
    return counts
