"""``serve``: real JPEGs in, predictions out; every error JSON; the server survives abuse.

The server under test is the real one (waitress with the app), on loopback, with the
tiny exported ResNet-18 of conftest and real Caltech-256 JPEGs when ../shared/data exists.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from caltech_edge.cli import main
from caltech_edge.data.imageio import load_image
from caltech_edge.runtime import load_model
from caltech_edge.runtime.serve import make_server


def _start(model, **kw):
    srv = make_server(model, port=0, **kw)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def model(edge_onnx):
    return load_model(edge_onnx)


@pytest.fixture(scope="module")
def server(model):
    srv = _start(model, max_bytes=200_000, max_queue=64)
    yield srv, model
    srv.shutdown()


def _conn(srv, timeout=30):
    host, port = srv.server_address
    return http.client.HTTPConnection(host, port, timeout=timeout)


def _request(srv, method, path, body=None, headers=None):
    conn = _conn(srv)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    assert resp.getheader("Content-Type") == "application/json", (resp.status, data[:200])
    return resp.status, json.loads(data)


def _image_paths(tmp_path) -> list[Path]:
    """Real Caltech-256 sample JPEGs when the shared data is there, else generated JPEGs."""
    from runtime_helpers import shared_sample_images

    paths = shared_sample_images(3)
    if paths:
        return paths
    rng = np.random.default_rng(0)
    out = []
    for i in range(3):
        out.append(tmp_path / f"{i}.jpg")
        cv2.imwrite(str(out[-1]), rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))
    return out


def test_binds_loopback_health_ping_openapi(server):
    srv, model = server
    assert srv.server_address[0] == "127.0.0.1"
    status, body = _request(srv, "GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["model"]["hash"] == model.info["hash"]
    assert _request(srv, "GET", "/ping") == (200, {"status": "ok"})
    status, schema = _request(srv, "GET", "/openapi.json")
    assert status == 200 and schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == set(srv.app.routes)
    for path in ("/predict", "/invocations"):
        assert {"413", "415", "400", "503"} <= set(schema["paths"][path]["post"]["responses"])


def test_predict_and_invocations_real_jpegs_raw_and_multipart(server, tmp_path):
    srv, model = server
    for path in _image_paths(tmp_path):
        data = path.read_bytes()
        expected = model.predict(load_image(path, order="BGR"), top_k=2)["predictions"]
        for route, ctype in (("/predict", "image/jpeg"), ("/invocations", "application/x-image")):
            status, body = _request(srv, "POST", route + "?top_k=2", data, {"Content-Type": ctype})
            assert status == 200, body
            assert [p["index"] for p in body["predictions"]] == [p["index"] for p in expected]
    boundary = uuid.uuid4().hex
    multipart = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, body2 = _request(
        srv,
        "POST",
        "/predict?top_k=2",
        multipart,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert status == 200 and body2["predictions"] == body["predictions"]
    png = cv2.imencode(".png", load_image(path, order="BGR"))[1].tobytes()
    assert _request(srv, "POST", "/predict", png, {"Content-Type": "image/png"})[0] == 200
    # a chunked upload is de-chunked by the server (the old server refused it with 411)
    conn = _conn(srv)
    conn.request("POST", "/predict", body=iter([data[:1000], data[1000:]]),
                 headers={"Content-Type": "image/jpeg"}, encode_chunked=True)  # fmt: skip
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["predictions"]


def test_valid_gif_is_classified_not_called_corrupt(server, tmp_path):
    from PIL import Image

    srv, _ = server
    buf = io.BytesIO()
    Image.open(_image_paths(tmp_path)[0]).convert("RGB").save(buf, "GIF")
    status, body = _request(srv, "POST", "/predict", buf.getvalue(), {"Content-Type": "image/gif"})
    assert status == 200 and body["predictions"], body


def test_rejects_garbage_oversize_and_bombs_with_json(server):
    from caltech_edge.data.bombs import png_bomb

    srv, _ = server
    status, body = _request(
        srv, "POST", "/predict", b"not an image", {"Content-Type": "image/jpeg"}
    )
    assert status == 400 and "not an image" in body["error"]
    assert _request(srv, "POST", "/predict", b"{}", {"Content-Type": "application/json"})[0] == 415
    assert _request(srv, "POST", "/predict", b"", {"Content-Type": "image/jpeg"})[0] == 400
    assert _request(srv, "POST", "/predict?top_k=0", b"x", {"Content-Type": "image/jpeg"})[0] == 400
    status, body = _request(srv, "GET", "/nope")
    assert status == 404 and "/predict" in body["error"]
    # a tiny PNG whose header claims 100k x 100k pixels: refused before decoding
    png = bytearray(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    png[16:24] = (100_000).to_bytes(4, "big") * 2
    status, body = _request(srv, "POST", "/predict", bytes(png), {"Content-Type": "image/png"})
    assert status == 413 and "pixels" in body["error"]
    # the 1.5 KB 60000x8 PNG that took the old server from 355 MB to 1.77 GB
    status, body = _request(
        srv, "POST", "/predict", png_bomb(60000, 8), {"Content-Type": "image/png"}
    )
    assert status == 413 and "aspect ratio" in body["error"]
    gif = b"GIF89a" + (40).to_bytes(2, "little") * 2 + b"\x00\x00\x00" + b"\x2c" + b"\x00" * 30
    assert _request(srv, "POST", "/predict", gif, {"Content-Type": "image/gif"})[0] == 400
    truncated = cv2.imencode(".jpg", np.full((64, 64, 3), 127, np.uint8))[1].tobytes()[:40]
    assert _request(srv, "POST", "/predict", truncated, {"Content-Type": "image/jpeg"})[0] == 400


def test_json_errors_for_every_method_and_drained_bodies_on_keep_alive(server, tmp_path):
    """POST /unknown with a body that looks like a request, an oversize body, PUT, DELETE,
    HEAD, OPTIONS: each answered in JSON (HEAD: headers only), and the same connection
    then serves a valid request."""
    srv, _ = server
    jpeg = _image_paths(tmp_path)[0].read_bytes()
    conn = _conn(srv)
    smuggled = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    for method, path, body, expected in (
        ("POST", "/unknown", smuggled, 404),
        ("POST", "/predict", b"x" * 300_000, 413),  # over max_bytes, under the drain cap
        ("PUT", "/predict", b"abc", 405),
        ("DELETE", "/health", None, 405),
        ("HEAD", "/health", None, 200),  # the GET answer without a body
        ("OPTIONS", "/predict", None, 405),
        ("PATCH", "/nowhere", b"{}", 404),
        ("POST", "/predict", jpeg, 200),
    ):
        conn.request(method, path, body=body, headers={"Content-Type": "image/jpeg"})
        sock = conn.sock
        resp = conn.getresponse()
        raw = resp.read()
        payload = json.loads(raw) if method != "HEAD" else {}
        assert resp.status == expected, (method, path, payload)
        assert method != "HEAD" or (raw == b"" and int(resp.getheader("Content-Length")) > 0)
        assert resp.getheader("Content-Type") == "application/json"
        assert conn.sock is sock and not resp.will_close, "connection was not kept alive"
        if expected == 405:
            assert resp.getheader("Allow") and "not supported" in payload["error"]
    conn.close()


def _raw_exchange(srv, data: bytes, timeout=10.0) -> bytes:
    """Send raw bytes and read until the server closes the connection."""
    with socket.create_connection(srv.server_address, timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_malformed_requests_and_huge_bodies_get_json_and_close(server):
    srv, _ = server
    reply = _raw_exchange(srv, b"GARBAGE\r\n\r\n")
    assert reply.split(b"\r\n")[0].endswith(b"400 Bad Request") and b"application/json" in reply
    assert "error" in json.loads(reply.split(b"\r\n\r\n", 1)[1])
    # far over the cap: answered from the headers alone, connection closed, body never read
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n"
    reply = _raw_exchange(srv, head)
    assert b" 413 " in reply.split(b"\r\n")[0] and b"application/json" in reply
    assert "exceeds" in json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]


def test_fifty_concurrent_uploads_no_reset(server, tmp_path):
    srv, _ = server
    jpeg = _image_paths(tmp_path)[1].read_bytes()
    barrier = threading.Barrier(50)
    results: list = [None] * 50

    def client(i):
        try:
            conn = _conn(srv, timeout=120)
            barrier.wait(timeout=30)
            conn.request("POST", "/predict", body=jpeg, headers={"Content-Type": "image/jpeg"})
            resp = conn.getresponse()
            resp.read()
            results[i] = resp.status
            conn.close()
        except Exception as exc:  # a reset shows up here
            results[i] = repr(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert results == [200] * 50, [r for r in results if r != 200][:5]


def test_saturated_server_answers_503_with_retry_after(model, tmp_path):
    jpeg = _image_paths(tmp_path)[0].read_bytes()
    lock = threading.Lock()
    srv = _start(model, workers=1, max_queue=0, lock=lock)
    try:
        lock.acquire()  # the backend is "busy": the first request holds the only slot
        first: dict = {}

        def slow():
            first["reply"] = _request(srv, "POST", "/predict", jpeg, {"Content-Type": "image/jpeg"})

        thread = threading.Thread(target=slow)
        thread.start()
        deadline = time.monotonic() + 30
        while srv.app.admission.active < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        conn = _conn(srv)
        conn.request("POST", "/predict", body=jpeg, headers={"Content-Type": "image/jpeg"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 503 and int(resp.getheader("Retry-After")) >= 1
        assert "busy" in body["error"]
        assert _request(srv, "GET", "/ping")[0] == 200  # health stays answerable when saturated
        lock.release()
        thread.join(timeout=60)
        assert first["reply"][0] == 200
        assert srv.app.admission.rejected == 1
    finally:
        if lock.locked():
            lock.release()
        srv.shutdown()


def test_idle_and_stalled_connections_are_closed(model):
    srv = _start(model, timeout=1)
    try:
        start = time.monotonic()
        assert _raw_exchange(srv, b"") == b""  # idle: closed by the server, no reply
        stalled = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n12345"
        assert _raw_exchange(srv, stalled) == b""
        assert time.monotonic() - start < 9  # each within timeout + cleanup interval
    finally:
        srv.shutdown()


def test_trickling_request_is_closed_at_the_read_deadline(model):
    """A slow-loris client sending a byte every 0.3 s is never idle, yet gets cut off."""
    srv = _start(model, timeout=30, read_timeout=2)
    try:
        with socket.create_connection(srv.server_address, timeout=10) as sock:
            start = time.monotonic()
            request = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
            closed = False
            for i in range(60):
                try:
                    sock.sendall(request[i : i + 1] or b"x")
                except OSError:  # reset or broken pipe: the server closed it
                    closed = True
                    break
                time.sleep(0.3)
            if not closed:
                sock.settimeout(5)
                closed = sock.recv(1024) == b""
        assert closed and time.monotonic() - start < 10
    finally:
        srv.shutdown()


def test_cli_serve_starts_on_loopback(edge_onnx):
    import re
    import subprocess
    import sys
    import urllib.request

    code = "import sys; from caltech_edge.cli import main; sys.exit(main())"
    args = ["serve", "--model", str(edge_onnx), "--port", "0"]
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "serving" not in line:
            line = proc.stderr.readline()
            assert line, "serve exited before listening"
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        with urllib.request.urlopen(url + "/ping", timeout=10) as resp:
            assert json.loads(resp.read())["status"] == "ok"
        proc.terminate()  # SIGTERM: a clean shutdown, exit 0
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_serve_bad_port_host_and_port_in_use_one_line_exit_2(edge_onnx, capsys):
    model = str(edge_onnx)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = str(busy.getsockname()[1])
        for extra, needle in (
            (["--port", "99999"], "--port 99999"),
            (["--host", "no-such-host.invalid"], "--host 'no-such-host.invalid'"),
            (["--host", "10.255.255.1"], "--host '10.255.255.1'"),
            (["--port", taken], "already in use"),
        ):
            assert main(["serve", "--model", model, *extra]) == 2
            err = capsys.readouterr().err.strip()
            assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
