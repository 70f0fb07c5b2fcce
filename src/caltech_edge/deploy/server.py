"""A small HTTP endpoint that serves deployment artifacts (the S3 bucket of the old flow).

Only files registered with :meth:`ArtifactServer.add` are reachable (by an opaque name, never
a path from the request), it binds to loopback by default, every connection has a timeout
and at most ``max_connections`` are served at once, so it is safe to leave running.
"""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Optional


class _Handler(BaseHTTPRequestHandler):
    server_version = "caltech-edge-artifacts/1"
    timeout = 30

    def log_message(self, fmt: str, *args: object) -> None:  # quiet by default
        return None

    def do_GET(self) -> None:
        server: ArtifactHttpd = self.server  # type: ignore[assignment]
        if not server.slots.acquire(timeout=5):
            self.send_error(503, "busy")
            return
        try:
            name = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
            path = server.files.get(name) if self.path.startswith("/artifacts/") else None
            if path is None or not path.is_file():
                self.send_error(404, "no such artifact")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with open(str(path), "rb") as fh:
                shutil.copyfileobj(fh, self.wfile)
            server.downloads += 1
        finally:
            server.slots.release()


class ArtifactHttpd(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple, max_connections: int) -> None:
        super().__init__(address, _Handler)
        self.files: Dict[str, Path] = {}
        self.slots = threading.BoundedSemaphore(max(1, int(max_connections)))
        self.downloads = 0


class ArtifactServer:
    """Serve registered files at ``http://HOST:PORT/artifacts/<name>`` from a thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, max_connections: int = 8) -> None:
        self.httpd = ArtifactHttpd((host, int(port)), max_connections)
        self._thread: Optional[threading.Thread] = None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, path: Path, name: Optional[str] = None) -> str:
        """Register ``path``; returns its URL."""
        name = name or Path(path).name
        self.httpd.files[name] = Path(path)
        return f"{self.base_url}/artifacts/{name}"

    def start(self) -> ArtifactServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="artifacts", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
