"""The cloud loop's two numbers: the swap gap of a live deployment, the rules' throughput.

* **swap gap**: the device loop (``runtime.loop.run``) runs on camera-sized frames as fast
  as it can while a deployment is applied in the background (download from a file URL,
  sha256, unpack, load, self-test, swap, probation). Reported: the median inter-result gap
  before the deployment, the longest gap while it was applied, and the gap at the swap
  frame itself; for a single-file ONNX artifact and a two-file OpenVINO IR archive.
* **rule throughput**: N QoS 1 payloads published to a real Mosquitto; the time until the
  cloud service committed all of them (3 rules: store + JSONL, filtered store + republish,
  and the same with a Python handler), against a plain paho subscriber that only counts
  (the broker's own rate on this machine) in the same run.

    flock /tmp/caltech-edge-bench.lock .venv/bin/python benchmarks/bench_cloud_loop.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from caltech_edge._bench import machine_info, markdown_table

REPO = Path(__file__).resolve().parents[1]
RULES = """
rules:
  - name: all
    sql: SELECT * FROM '$aws/things/+/infer'
    actions: [{store: {jsonl: all.jsonl}}]
  - name: low
    sql: SELECT device, seq, predictions[0].probability AS p FROM '$aws/things/+/infer'
         WHERE predictions[0].probability < 0.5
    actions: [{store: {}}, {republish: {topic: 'alerts/${device}'}}]
"""
HANDLER_RULE = """
  - name: lambda
    sql: SELECT device, seq FROM '$aws/things/+/infer' WHERE seq % 2 = 0
    actions: [{handler: {file: handler.py}}]
"""


def _models(out: Path, size: int) -> dict[str, Path]:
    import torch

    from caltech_edge.card import ModelCard
    from caltech_edge.data.transforms import PreprocessSpec
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.export.openvino import onnx_to_openvino
    from caltech_edge.models import create_model

    paths = {}
    for name, seed in (("v1", 0), ("v2", 1)):
        torch.manual_seed(seed)
        model = create_model("resnet18", 3, weights=None).eval()
        card = ModelCard(
            arch="resnet18", class_names=("a", "b", "c"), preprocess=PreprocessSpec(image_size=size)
        )
        paths[name] = export_onnx(model, card, out / name / "model.onnx")
    paths["v2_ir"] = onnx_to_openvino(paths["v2"], out / "v2ir" / "model.xml", card=card)
    return paths


def swap_gap(paths: dict[str, Path], artifact: str, frames: int, work: Path) -> dict:
    from caltech_edge.deploy.agent import AgentConfig, DeploymentAgent
    from caltech_edge.deploy.artifact import pack
    from caltech_edge.deploy.job import make_job
    from caltech_edge.runtime.loop import run
    from caltech_edge.runtime.predictor import load_model

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(8)]
    state = work / ("state-" + artifact)
    shutil.rmtree(state, ignore_errors=True)
    agent = DeploymentAgent(
        AgentConfig(thing="bench", state_dir=state, probation_frames=10), load_model(paths["v1"])
    )
    shipped, entry = pack(paths[artifact], work / "ship")
    job = make_job(
        shipped,
        entry,
        paths[artifact],
        load_model(paths[artifact]).card,
        url=str(shipped),
        job_id=artifact,
    )
    times: list[float] = []
    hashes: list[str] = []
    marks: dict[str, int] = {}

    def on_payload(payload: dict) -> None:
        times.append(time.perf_counter())
        hashes.append(payload["model"]["hash"])
        if len(times) == frames // 4:
            marks["submit"] = len(times)
            agent.submit(job)
        if (
            "submit" in marks
            and "done" not in marks
            and any(h["status"] == "SUCCEEDED" for h in agent.history)
        ):
            marks["done"] = len(times)

    source = ((i, images[i % len(images)]) for i in range(frames))
    run(source, agent.model, on_payload=on_payload)
    agent.close()
    gaps = np.diff(times) * 1e3
    start, end = marks["submit"], marks.get("done", len(times) - 1)
    switch = next(i for i, h in enumerate(hashes) if h != hashes[0])
    return {
        "artifact": artifact,
        "frames": len(times),
        "lost": frames - len(times),
        "median_gap_ms": round(float(np.median(gaps[: start - 1])), 2),
        "max_gap_before_ms": round(float(gaps[: start - 1].max()), 2),
        "max_gap_during_ms": round(float(gaps[start - 1 : end].max()), 2),
        "swap_frame_gap_ms": round(float(gaps[switch - 1]), 2),
        "deploy_frames": end - start,
        "status": agent.history[-1]["status"],
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _broker(root: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    (root / "m.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
    )
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(root / "m.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def _payloads(n: int) -> list[bytes]:
    return [json.dumps({"schema_version": 1, "seq": i, "device": "bench", "model": {"hash": "h"},
                        "predictions": [{"label": "a", "index": 0, "probability": (i % 10) / 10}]}).encode()
            for i in range(1, n + 1)]  # fmt: skip


def _publish(port: int, payloads: list[bytes]) -> float:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-device")
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    t0 = time.perf_counter()
    infos = [client.publish("$aws/things/bench/infer", p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()
    return t0


def plain_rate(port: int, n: int) -> dict:
    import paho.mqtt.client as mqtt

    got, done = [0], threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-plain")
    ready = threading.Event()
    sub.on_subscribe = lambda *a: ready.set()

    def on_message(c, u, m):
        got[0] += 1
        if got[0] == n:
            done.set()

    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe("$aws/things/+/infer", qos=1)
    sub.loop_start()
    ready.wait(10)
    t0 = _publish(port, _payloads(n))
    done.wait(120)
    seconds = time.perf_counter() - t0
    sub.loop_stop()
    sub.disconnect()
    return {"consumer": "plain paho subscriber (count only)", "messages": got[0], "seconds": round(seconds, 2),
            "msgs_per_s": round(got[0] / seconds, 1)}  # fmt: skip


def rules_rate(port: int, n: int, work: Path, handler: bool) -> dict:
    from caltech_edge.cloud.rules import load_rules
    from caltech_edge.cloud.service import CloudService
    from caltech_edge.cloud.store import CloudStore

    root = work / ("rules-handler" if handler else "rules")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "handler.py").write_text(
        "calls = []\ndef handler(event, context):\n    calls.append(event['seq'])\n"
    )
    (root / "rules.yaml").write_text(RULES + (HANDLER_RULE if handler else ""))
    store = CloudStore(root / "cloud.sqlite")
    service = CloudService(load_rules(root / "rules.yaml"), store, port=port,
                           client_id="bench-cloud-" + root.name).start()  # fmt: skip
    service.wait_ready(10)
    t0 = _publish(port, _payloads(n))
    while service.processed < n and time.perf_counter() - t0 < 300:
        time.sleep(0.01)
    seconds = time.perf_counter() - t0
    service.idle(30)
    service.close()
    stored = store.count("events")
    store.close()
    return {"consumer": "cloud rules (3 rules{})".format(" + handler" if handler else ""),
            "messages": service.processed, "seconds": round(seconds, 2),
            "msgs_per_s": round(service.processed / seconds, 1), "stored_rows": stored}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--size", type=int, default=64, help="model input size")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_cloud_loop.json"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = _models(work / "models", args.size)
        gaps = [swap_gap(paths, a, args.frames, work) for a in ("v2", "v2_ir")]
        broker, port = _broker(work)
        try:
            rates = [plain_rate(port, args.messages), rules_rate(port, args.messages, work, False),
                     rules_rate(port, args.messages, work, True)]  # fmt: skip
        finally:
            broker.terminate()
    base = rates[0]["msgs_per_s"]
    for row in rates:
        row["vs_plain"] = round(row["msgs_per_s"] / base, 3)
    print(markdown_table(gaps, ["artifact", "frames", "lost", "median_gap_ms", "max_gap_before_ms",
                                "max_gap_during_ms", "swap_frame_gap_ms", "deploy_frames", "status"]))  # fmt: skip
    print()
    print(markdown_table(rates, ["consumer", "messages", "seconds", "msgs_per_s", "vs_plain"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine_info(), "swap_gap": gaps, "rules": rates,
                                    "model_size": args.size}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
