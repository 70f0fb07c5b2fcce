"""``deploy`` -> a running ``infer --accept-deployments`` on a real broker: swap, refuse, report."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from runtime_helpers import run_cli

from caltech_edge.runtime.predictor import load_model


def _device(model: Path, video: Path, broker, tmp_path: Path, frames: int) -> subprocess.Popen:
    args = [
        "infer", "--model", str(model), "--source", str(video), "--device", "cam-1",
        "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port), "--rate", "20",
        "--max-frames", str(frames), "--buffer-dir", str(tmp_path / "state"), "--output", str(tmp_path / "results.jsonl"),
        "--accept-deployments", "--probation-frames", "5",
    ]  # fmt: skip
    cmd = [
        sys.executable,
        "-c",
        "import sys; from caltech_edge.cli import main; sys.exit(main())",
        *args,
    ]
    # stdout/stderr to files: a full pipe would block the device loop
    out = open(tmp_path / "device.err", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out, text=True)


def _deploy(artifact: Path, broker, *extra: str) -> dict:
    proc = run_cli("deploy", str(artifact), "--device", "cam-1", "--mqtt-host", "127.0.0.1",
                   "--mqtt-port", str(broker.port), "--wait", "60", *extra)  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def test_deploy_swaps_live_device_and_refuses_bad_artifacts(models, video, broker, tmp_path):
    device = _device(models["v1"], video, broker, tmp_path, 600)
    try:
        time.sleep(4)  # the device is up and subscribed (a retained job would wait anyway)
        good = _deploy(models["v2_ir"].parent, broker)
        assert good["statuses"] == {"cam-1": "SUCCEEDED"}, good
        corrupt = tmp_path / "corrupt.onnx"
        data = bytearray(models["v2"].read_bytes())
        data[len(data) // 2] ^= 0xFF
        corrupt.write_bytes(bytes(data))
        bad = _deploy(models["v2"], broker, "--url", corrupt.as_uri())
        assert (
            bad["statuses"] == {"cam-1": "FAILED"} and "sha256" in bad["details"]["cam-1"]["reason"]
        )
        wrong = _deploy(models["two_class"], broker)
        assert (
            wrong["statuses"] == {"cam-1": "FAILED"}
            and "class count" in wrong["details"]["cam-1"]["reason"]
        )
        device.wait(timeout=120)
    finally:
        device.kill()
    err = (tmp_path / "device.err").read_text()
    assert device.returncode == 0, err
    payloads = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    frames = [p["frame"]["index"] for p in payloads]
    assert frames == list(range(frames[0], frames[0] + len(payloads)))  # no frame lost
    assert [p["seq"] for p in payloads] == list(range(1, len(payloads) + 1))
    hashes = [p["model"]["hash"] for p in payloads]
    old, new = load_model(models["v1"]).info["hash"], load_model(models["v2_ir"]).info["hash"]
    switch = hashes.index(new)
    assert set(hashes[:switch]) == {old} and set(hashes[switch:]) == {new}  # one swap, no way back
    stats = json.loads(err.strip().splitlines()[-1])
    assert stats["deploy"]["swaps"] == 1 and stats["deploy"]["rollbacks"] == 0


def test_group_deployment_reaches_a_member_over_mqtt(models, broker, tmp_path):
    """A job for a group is picked up by a device subscribed to it; its status is reported."""
    import numpy as np

    from caltech_edge.deploy.agent import AgentConfig, DeploymentAgent
    from caltech_edge.deploy.publisher import deploy

    config = AgentConfig(thing="cam-g", state_dir=tmp_path / "s", groups=("lobby",), host="127.0.0.1",
                         port=broker.port, probation_frames=0)  # fmt: skip
    agent = DeploymentAgent(config, load_model(models["v1"]))
    try:
        assert agent.wait_subscribed(10)
        out = deploy(models["v2"], things=[], groups=["lobby"], host="127.0.0.1", port=broker.port,
                     url=models["v2"].as_uri(), wait=0)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            h["status"] == "SUCCEEDED" for h in agent.history
        ):
            time.sleep(0.1)
        frame = np.zeros((40, 40, 3), np.uint8)
        assert agent.model.predict(frame)["model"]["hash"] == out["job"]["artifact"]["model_hash"]
        assert agent.state.job_status(out["job"]["jobId"]) == "SUCCEEDED"
    finally:
        agent.close()
