"""Load test of ``caltech-edge serve`` on loopback: 200 concurrent uploads, resets, p50/p99.

Starts the real CLI server (a child process, so clients and server do not share a GIL) on
127.0.0.1 with the SqueezeNet Caltech-256 weights of ../shared/data exported to ONNX (a
random ResNet-18 without them), then releases ``--clients`` threads at once, each on its
own connection posting one real Caltech-256 JPEG. Two server settings:

* ``queue >= clients``: every request is admitted and waits its turn; all must be 200;
* ``default queue (16)``: what a saturated server does by default: the excess is told
  ``503`` + ``Retry-After`` at once instead of piling up.

Counted per run: status codes, connection resets and other client errors, p50/p99 latency
(of the 200s, and of the 503s), next to 50 sequential requests of one client (the unloaded
latency). Bounded: one request per client, loopback only.

    python benchmarks/bench_serve.py [--clients 200]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from caltech_edge._bench import machine_info, markdown_table

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CALTECH_EDGE_SHARED_DATA", REPO.parent / "shared" / "data"))


def _export(out: Path) -> tuple[Path, str]:
    import torch

    from caltech_edge.card import ModelCard, read_class_names
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.models import create_model

    weights = SHARED / "weights" / "squeezenet1_1_caltech256.pth"
    if weights.is_file():
        names = read_class_names(SHARED / "weights" / "squeezenet1_1_caltech256_idx_to_class.txt")
        model = create_model("squeezenet1_1", len(names), weights=str(weights)).eval()
        card = ModelCard(arch="squeezenet1_1", class_names=names, name="squeezenet-caltech256")
        label = "squeezenet1_1 caltech256 (real weights)"
    else:
        torch.manual_seed(0)
        model = create_model("resnet18", 10, weights=None).eval()
        card = ModelCard(arch="resnet18", class_names=tuple(f"c{i}" for i in range(10)))
        label = "resnet18 (random weights)"
    return export_onnx(model, card, out / "model.onnx"), label


def _jpegs(n: int) -> list[bytes]:
    paths = sorted((SHARED / "caltech256-sample").glob("*/*.jpg"))
    if paths:
        return [p.read_bytes() for p in paths[:: max(1, len(paths) // n)][:n]]
    import cv2

    rng = np.random.default_rng(0)
    return [
        cv2.imencode(".jpg", rng.integers(0, 255, (300, 400, 3), np.uint8))[1].tobytes()
        for _ in range(n)
    ]


def _start(model: Path, extra: list[str]) -> tuple[subprocess.Popen, str, int]:
    code = "import sys; from caltech_edge.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", code, "serve", "--model", str(model), "--port", "0", *extra]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    line = ""
    while "serving" not in line:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError("serve exited before listening")
    host, port = re.search(r"http://(127\.0\.0\.1):(\d+)", line).groups()
    return proc, host, int(port)


def _load(host: str, port: int, bodies: list[bytes], clients: int) -> list[dict]:
    """One request per client thread, all released together; what each one saw."""
    barrier = threading.Barrier(clients)
    results: list[dict] = [{} for _ in range(clients)]

    def client(i: int) -> None:
        out = results[i]
        try:
            conn = http.client.HTTPConnection(host, port, timeout=300)
            conn.connect()
            barrier.wait(timeout=60)
            start = time.perf_counter()
            body = bodies[i % len(bodies)]
            conn.request("POST", "/predict", body=body, headers={"Content-Type": "image/jpeg"})
            resp = conn.getresponse()
            resp.read()
            out.update(status=resp.status, ms=(time.perf_counter() - start) * 1e3)
            conn.close()
        except ConnectionResetError:
            out["status"] = "reset"
        except Exception as exc:
            out["status"] = type(exc).__name__

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return results


def _sequential(host: str, port: int, bodies: list[bytes], n: int) -> list[dict]:
    """``n`` requests one after another on one keep-alive connection: the unloaded latency."""
    conn = http.client.HTTPConnection(host, port, timeout=60)
    results = []
    for i in range(n):
        start = time.perf_counter()
        conn.request("POST", "/predict", body=bodies[i % len(bodies)],
                     headers={"Content-Type": "image/jpeg"})  # fmt: skip
        resp = conn.getresponse()
        resp.read()
        results.append({"status": resp.status, "ms": (time.perf_counter() - start) * 1e3})
    conn.close()
    return results


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _summary(setting: str, results: list[dict], wall_s: float) -> dict:
    ok = [r["ms"] for r in results if r.get("status") == 200]
    busy = [r["ms"] for r in results if r.get("status") == 503]
    other = [r.get("status") for r in results if r.get("status") not in (200, 503)]
    return {
        "server": setting,
        "requests": len(results),
        "200": len(ok),
        "503": len(busy),
        "resets": other.count("reset"),
        "other errors": len(other) - other.count("reset"),
        "p50 ms (200)": _pct(ok, 50),
        "p99 ms (200)": _pct(ok, 99),
        "p50 ms (503)": _pct(busy, 50),
        "wall s": wall_s,
        "req/s": len(ok) / wall_s if wall_s else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_serve.json"
    )
    args = parser.parse_args()
    bodies = _jpegs(20)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        model, label = _export(Path(tmp))
        settings = {
            f"queue {args.clients}": [
                "--max-queue",
                str(args.clients),
                "--queue-timeout",
                "300",
            ],
            "default queue (16)": [],
        }
        for setting, extra in settings.items():
            proc, host, port = _start(model, extra)
            try:
                _load(host, port, bodies[:2], 2)  # warm-up: first inference, imports
                if not rows:
                    start = time.perf_counter()
                    results = _sequential(host, port, bodies, 50)
                    rows.append(
                        _summary("1 client, sequential", results, time.perf_counter() - start)
                    )
                start = time.perf_counter()
                results = _load(host, port, bodies, args.clients)
                rows.append(_summary(setting, results, time.perf_counter() - start))
            finally:
                proc.terminate()
                proc.wait(timeout=60)
            print(json.dumps(rows[-1]), flush=True)
    columns = list(rows[0])
    print()
    print(markdown_table(rows, columns))
    result = {
        "benchmark": "bench_serve",
        "model": label,
        "clients": args.clients,
        "jpeg_bytes_mean": float(np.mean([len(b) for b in bodies])),
        "rows": rows,
        "machine": machine_info(),
        "load_average": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
