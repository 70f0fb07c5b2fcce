"""``serve``: real JPEGs in, predictions out; garbage and oversize bodies get clear 4xx."""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from caltech_edge.runtime import load_model
from caltech_edge.runtime.serve import make_server


@pytest.fixture(scope="module")
def server(edge_artifacts):
    model = load_model(edge_artifacts["onnxruntime"])
    srv = make_server(model, port=0, max_bytes=200_000)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, model
    srv.shutdown()
    srv.server_close()


def _request(srv, method, path, body=None, headers=None):
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data)


def _jpegs(request) -> list[bytes]:
    """Real Caltech-256 sample images when the shared data is there, else generated JPEGs."""
    from runtime_helpers import shared_sample_images

    paths = shared_sample_images(3)
    if paths:
        return [Path(p).read_bytes() for p in paths]
    rng = np.random.default_rng(0)
    return [
        cv2.imencode(".jpg", rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))[1].tobytes()
        for _ in range(3)
    ]


def test_binds_loopback_and_health(server):
    srv, model = server
    assert srv.server_address[0] == "127.0.0.1"
    status, body = _request(srv, "GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["model"]["hash"] == model.info["hash"]
    status, schema = _request(srv, "GET", "/openapi.json")
    assert status == 200 and schema["openapi"].startswith("3.")
    assert {"413", "415", "400"} <= set(schema["paths"]["/predict"]["post"]["responses"])


def test_predict_real_jpegs_raw_and_multipart(server, request):
    srv, model = server
    for data in _jpegs(request):
        status, body = _request(
            srv, "POST", "/predict?top_k=2", data, {"Content-Type": "image/jpeg"}
        )
        assert status == 200, body
        expected = model.predict(
            cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), top_k=2
        )
        assert [p["index"] for p in body["predictions"]] == [
            p["index"] for p in expected["predictions"]
        ]
        assert len(body["predictions"]) == 2
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
    png = cv2.imencode(".png", cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))[
        1
    ].tobytes()
    status, _ = _request(srv, "POST", "/predict", png, {"Content-Type": "image/png"})
    assert status == 200


def test_header_size_matches_decoder():
    from caltech_edge.runtime.serve import image_size

    img = np.zeros((37, 53, 3), np.uint8)
    for ext in (".jpg", ".png"):
        assert image_size(cv2.imencode(ext, img)[1].tobytes()) == (53, 37)
    assert image_size(b"hello") is None


def test_rejects_garbage_and_oversize(server):
    srv, _ = server
    status, body = _request(
        srv, "POST", "/predict", b"not an image at all", {"Content-Type": "image/jpeg"}
    )
    assert status == 400 and "JPEG or PNG" in body["error"]
    status, body = _request(srv, "POST", "/predict", b"{}", {"Content-Type": "application/json"})
    assert status == 415
    status, body = _request(srv, "POST", "/predict", b"x" * 300_000, {"Content-Type": "image/jpeg"})
    assert status == 413 and "limit" in body["error"]
    status, body = _request(srv, "POST", "/predict", b"", {"Content-Type": "image/jpeg"})
    assert status == 400
    status, body = _request(srv, "POST", "/predict?top_k=0", b"", {"Content-Type": "image/jpeg"})
    assert status == 400
    status, _ = _request(srv, "GET", "/nope")
    assert status == 404
    # a tiny PNG whose header claims 100k x 100k pixels: refused before decoding
    png = bytearray(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    png[16:24] = (100_000).to_bytes(4, "big") * 2
    status, body = _request(srv, "POST", "/predict", bytes(png), {"Content-Type": "image/png"})
    assert status == 413 and "pixels" in body["error"]
    status, body = _request(
        srv, "POST", "/predict", b"GIF89a" + b"0" * 50, {"Content-Type": "image/gif"}
    )
    assert status == 400
    truncated = cv2.imencode(".jpg", np.full((64, 64, 3), 127, np.uint8))[1].tobytes()[:40]
    status, _ = _request(srv, "POST", "/predict", truncated, {"Content-Type": "image/jpeg"})
    assert status == 400


def test_cli_serve_starts_on_loopback(edge_artifacts):
    import re
    import subprocess
    import sys
    import urllib.request

    code = "import sys; from caltech_edge.cli import main; sys.exit(main())"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "serve",
            "--model",
            str(edge_artifacts["onnxruntime"]),
            "--port",
            "0",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        while "serving" not in line:
            line = proc.stderr.readline()
            assert line, "serve exited before listening"
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        with urllib.request.urlopen(url + "/health", timeout=10) as resp:
            assert json.loads(resp.read())["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
