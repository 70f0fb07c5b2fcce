"""The whole loop on a real broker, through the real CLI (issue 15's "Done when").

device infers a video, publishes and uploads low-confidence captures -> the cloud stores
results and captures through its rules and calls a handler -> captures are reviewed and
merged -> retrain makes a new verified model -> deploy pushes it -> the device swaps with
no frame lost and publishes with the new hash; a device without a model gets predictions
over MQTT; a corrupted and a wrong-class-count artifact are refused and the model stays.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from runtime_helpers import run_cli, write_video

CLI = [sys.executable, "-c", "import sys; from caltech_edge.cli import main; sys.exit(main())"]
pytestmark = pytest.mark.slow


def _bg(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=open(log, "w"))


def _wait(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _ok(proc: subprocess.CompletedProcess) -> dict:
    """The command succeeded; its JSON output (the whole stdout, or its last line)."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout.strip()
    try:
        return json.loads(text)
    except ValueError:
        last = text.splitlines()[-1] if text else ""
        return json.loads(last) if last.startswith("{") else {}


def _rows(db: Path, rule: str) -> list[dict]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [json.loads(e) | {"_key": k} for k, e in con.execute(
            "SELECT key, event FROM events WHERE rule=? ORDER BY id", (rule,))]  # fmt: skip
    finally:
        con.close()


def _train_and_export(tmp_path: Path) -> tuple[Path, Path, Path]:
    data, run = tmp_path / "ds", tmp_path / "run1"
    _ok(run_cli("data", "synth", str(data), "--classes", "3", "--per-class", "16", "--size", "48"))
    _ok(run_cli("train", "--data", str(data), "--out", str(run), "--arch", "resnet18", "--weights", "none",
                "--epochs", "1", "--batch-size", "16", "--image-size", "32", "--train-per-class", "8",
                "--no-progress", "--json", timeout=600))  # fmt: skip
    proc = run_cli("export", str(run), "--to", "onnx", "--out", str(run / "export"), "--data", str(data),
                   "--no-progress", timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return data, run, run / "export" / "onnx" / "model.onnx"


def _wrong_class_count(model: Path, out: Path) -> Path:

    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.models import create_model
    from caltech_edge.runtime.predictor import load_model

    card = load_model(model).card
    card = card.replace(class_names=(*card.class_names, "004.extra"))
    return export_onnx(create_model("resnet18", 4, weights=None).eval(), card, out / "four.onnx")


def test_the_loop(rules_file, tmp_path, broker):
    data, run1, v1 = _train_and_export(tmp_path)
    mqtt = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port)]
    state, review_dir = tmp_path / "cloud-state", tmp_path / "review"
    cloud = _bg(["cloud", "--rules", str(rules_file), "--state", str(state), "--model", str(v1),
                 "--review-dir", str(review_dir), *mqtt], tmp_path / "cloud.log")  # fmt: skip
    try:
        assert _wait(lambda: '"ready": true' in (tmp_path / "cloud.log").read_text()), (
            tmp_path / "cloud.log"
        ).read_text()
        ready = json.loads(
            next(x for x in (tmp_path / "cloud.log").read_text().splitlines() if '"ready"' in x)
        )
        video = write_video(tmp_path / "clip.avi", 1500)
        device = ["infer", "--source", str(video), "--device", "cam-1", *mqtt,
                  "--buffer-dir", str(tmp_path / "device-state")]  # fmt: skip

        # 1. the device publishes results and keeps low-confidence frames; uploads them
        caps = tmp_path / "captures"
        _ok(run_cli(*device, "--model", str(v1), "--max-frames", "30", "--capture-dir", str(caps),
                    "--capture-threshold", "0.99", "--capture-max-files", "6"))  # fmt: skip
        assert len(list(caps.glob("*/*.jpg"))) == 6
        up = _ok(run_cli("upload", str(caps), "--url", ready["upload_url"], "--device", "cam-1"))
        assert up == {"uploaded": 6, "already": 0, "failed": 0} and not list(caps.glob("*/*.jpg"))

        # 2. the cloud stored every result once, the captures, and called the handler
        db = state / "cloud.sqlite"
        assert _wait(
            lambda: len(_rows(db, "all_results")) == 30 and len(_rows(db, "captures")) == 6
        )
        assert sorted(int(r["seq"]) for r in _rows(db, "all_results")) == list(range(1, 31))
        low = _rows(db, "low_confidence")
        calls = [json.loads(x) for x in (tmp_path / "handler.log").read_text().splitlines()]
        assert len(calls) == len(low) + 6  # low-confidence results and every uploaded capture
        assert sum(c["rule"] == "captures" for c in calls) == 6

        # 3. review (the prediction is the default label) and merge; 4. retrain, compare, export
        cam = review_dir / "cam-1"
        _ok(run_cli("data", "review", str(cam), "--accept-all"))
        merged = _ok(run_cli("data", "merge", str(cam), "--into", str(data)))
        assert merged["merged"] + merged["duplicates"] == 6
        proc = run_cli("retrain", str(run1), "--data", str(data), "--out", str(tmp_path / "run2"),
                       "--epochs", "1", "--tolerance", "1.0", timeout=900)  # fmt: skip
        report = _ok(proc)
        assert report["not_worse"] and report["export"]["verified"]
        assert report["previous"]["images"] == report["new"]["images"]  # the same held-out split
        assert (
            json.loads((tmp_path / "run2" / "retrain.json").read_text())["delta_top1"]
            == report["delta_top1"]
        )
        v2 = Path(report["export"]["artifacts"]["onnx"])

        # 5. deploy to the running device: swap, then two refusals; the model stays
        results = tmp_path / "live.jsonl"
        live = _bg([*device, "--model", str(v1), "--rate", "30", "--max-frames", "1500", "--output", str(results),
                    "--accept-deployments", "--probation-frames", "5"], tmp_path / "device.log")  # fmt: skip
        try:
            assert _wait(lambda: results.exists() and len(results.read_text().splitlines()) > 5)
            corrupt = tmp_path / "corrupt.onnx"
            corrupt.write_bytes(v2.read_bytes()[:-100] + bytes(100))
            bad = run_cli(
                "deploy",
                str(v2),
                "--device",
                "cam-1",
                *mqtt,
                "--url",
                corrupt.as_uri(),
                "--wait",
                "60",
            )
            bad = json.loads(bad.stdout)
            assert (
                bad["statuses"] == {"cam-1": "FAILED"}
                and "sha256" in bad["details"]["cam-1"]["reason"]
            )
            four = _wrong_class_count(v1, tmp_path)
            wrong = json.loads(
                run_cli("deploy", str(four), "--device", "cam-1", *mqtt, "--wait", "60").stdout
            )
            assert (
                wrong["statuses"] == {"cam-1": "FAILED"}
                and "class count" in wrong["details"]["cam-1"]["reason"]
            )
            good = _ok(run_cli("deploy", str(v2), "--device", "cam-1", *mqtt, "--wait", "120"))
            assert good["statuses"] == {"cam-1": "SUCCEEDED"}, (
                tmp_path / "device.log"
            ).read_text()[-3000:]
            live.wait(timeout=180)
        finally:
            live.kill()
        assert live.returncode == 0, (tmp_path / "device.log").read_text()[-3000:]
        payloads = [json.loads(x) for x in results.read_text().splitlines()]
        assert [p["frame"]["index"] for p in payloads] == list(
            range(payloads[0]["frame"]["index"], payloads[0]["frame"]["index"] + len(payloads))
        )
        hashes = [p["model"]["hash"] for p in payloads]
        from caltech_edge.runtime.predictor import load_model

        old, new = load_model(v1).info["hash"], load_model(v2).info["hash"]
        switch = hashes.index(new)
        assert set(hashes[:switch]) == {old} and set(hashes[switch:]) == {new}
        assert _wait(lambda: new in {r["model"]["hash"] for r in _rows(db, "all_results")})

        # 6. a device without a model asks the cloud (MQTT 5 and 3.1.1)
        image = tmp_path / "frame.png"
        cv2.imwrite(str(image), cv2.imread(str(next(data.rglob("*.jpg")))))
        for version in ("5", "3.1.1"):
            proc = run_cli(
                "remote-infer",
                str(image),
                "--device",
                "no-model-cam",
                *mqtt,
                "--mqtt-version",
                version,
            )
            assert proc.returncode == 0, proc.stderr
            reply = json.loads(proc.stdout)
            assert reply["model"]["hash"] == old and len(reply["predictions"]) == 3
    finally:
        cloud.send_signal(signal.SIGTERM)
        cloud.wait(timeout=30)
    assert cloud.returncode == 0
    stats = json.loads((tmp_path / "cloud.log").read_text().strip().splitlines()[-1])
    assert stats["remote"]["answered"] == 2 and stats["bad"] == 0
    # every message the cloud handled is in the store exactly once (results + captures)
    assert stats["processed"] == len(_rows(db, "all_results")) + len(_rows(db, "captures"))
