"""The compression report: every variant measured, markdown + JSON + a real PNG."""

from __future__ import annotations

import json

from caltech_edge.compress.pipeline import compress_report


def test_compress_report_builds_and_measures_all_variants(tiny_run, synthetic_root, tmp_path):
    result = compress_report(
        tiny_run,
        data=synthetic_root,
        out=tmp_path,
        calib_size=40,
        test_limit=None,
        repeats=3,
    )
    rows = {r["variant"]: r for r in result["rows"]}
    for name in (
        "FP32 torch eager",
        "FP32 ONNX Runtime",
        "FP16 IR OpenVINO (f32 hint)",
        "INT8 ONNX Runtime",
        "INT8 OpenVINO",
        "OpenVINO default precision (bf16 if the CPU has it)",
        "pruned-50% INT8 OpenVINO",
    ):
        assert name in rows, sorted(rows)
    fp32, int8 = rows["FP32 ONNX Runtime"], rows["INT8 ONNX Runtime"]
    assert abs(fp32["top1"] - rows["FP32 torch eager"]["top1"]) < 1e-9  # same images, same model
    assert int8["size_bytes"] < 0.35 * fp32["size_bytes"]
    assert fp32["macs"] > 0 and fp32["params"] == int8["params"]
    assert int8["note"].startswith("recipe `")  # the accuracy-aware search's choice, reported
    pruned = rows["pruned-50% FP32 ONNX Runtime"]
    assert pruned["macs"] < fp32["macs"] / 1.6 and pruned["params"] < fp32["params"] / 1.6
    assert all(r["latency_ms"] > 0 and 0 <= r["top1"] <= 1 for r in rows.values())
    png = tmp_path / "accuracy_vs_latency.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "report.json").read_text())
    assert len(data["rows"]) == len(rows) and data["machine"]["cores"]
    md = (tmp_path / "report.md").read_text()
    assert md.count("\n|") == len(rows) + 2 and "INT8 OpenVINO" in md
