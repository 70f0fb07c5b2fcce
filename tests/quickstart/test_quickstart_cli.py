"""``caltech-edge quickstart``: the whole pipeline, end to end, on a tiny synthetic run."""

from __future__ import annotations

import json
import socket
import tarfile
import zipfile

from caltech_edge.cli import main
from caltech_edge.quickstart import ALL_FORMATS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_quickstart_runs_every_stage(tmp_path, capsys):
    out = tmp_path / "qs"
    argv = ["quickstart", "--out", str(out), "--classes", "3", "--per-class", "24",
            "--train-per-class", "16", "--epochs", "6", "--batch-size", "8", "--image-size", "32",
            "--mqtt-port", str(_free_port()), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed and "| openvino-int8 |" in printed

    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["synthetic"] is True and summary["data"]["classes"] == 3
    assert len(summary["stage_seconds"]) == 8  # every stage, the summary's own included
    assert (
        0.0 <= summary["train"]["top1"] <= 1.0 and summary["train"]["test_images"] == 3 * 4
    )  # 24 - 16 train - 4 val
    assert set(summary["export"]) == set(ALL_FORMATS)
    assert all(report["passed"] for report in summary["export"].values())
    assert (out / "run-pruned" / "prune.json").is_file()

    with tarfile.open(summary["package"]["model"]) as tar:
        names = tar.getnames()
    assert any(n.endswith("-symbol.json") for n in names) and any(
        n.endswith(".params") for n in names
    )
    with zipfile.ZipFile(summary["package"]["lambda"]) as zf:
        assert "lambda_function.py" in zf.namelist()

    device = summary["device"]
    assert device["delivered_all"] is True and "file" in device["published_to"]
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == device["published"] > 0
    assert [json.loads(line)["seq"] for line in lines] == sorted(
        json.loads(line)["seq"] for line in lines
    )
    assert (out / "results.mjpeg").stat().st_size > 0

    rows = {row["format"] for row in summary["benchmark"]["rows"]}
    assert {"pytorch-eager (baseline)", "onnxruntime-raw (baseline)", *ALL_FORMATS} <= rows
    assert any(name.startswith("pruned50%-") for name in rows)
    assert (out / "accuracy_vs_latency.png").read_bytes()[:4] == b"\x89PNG"
