"""``caltech-edge benchmark``: every format next to PyTorch eager and raw ONNX Runtime."""

from __future__ import annotations

import json

import pytest
import torch

from caltech_edge.card import ModelCard
from caltech_edge.cli import main
from caltech_edge.data.datasets import open_dataset
from caltech_edge.data.splits import make_split
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.errors import CaltechEdgeError
from caltech_edge.models import create_model
from caltech_edge.rundir import RunDir


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, synthetic_root):
    """A torch run directory with an untrained ResNet-18 at 32 px and a saved split."""
    run = RunDir(tmp_path_factory.mktemp("bench-run"))
    ds = open_dataset(synthetic_root)
    make_split(ds, train_per_class=8, seed=0).save(run.split)
    torch.manual_seed(0)
    torch.save(create_model("resnet18", len(ds.classes), weights=None).state_dict(), run.weights)
    card = ModelCard(
        arch="resnet18", class_names=ds.classes, preprocess=PreprocessSpec(image_size=32)
    )
    card.save(run.card)
    return run


def test_benchmark_run_rows_baselines_and_plot(tiny_run, synthetic_root, tmp_path, capsys):
    from caltech_edge.export.pipeline import export

    export(tiny_run.root, formats="onnx,openvino", out=tmp_path / "export", data=synthetic_root,
           progress=False)  # fmt: skip
    rc = main(["benchmark", str(tmp_path / "export"), "--data", str(synthetic_root),
               "--iters", "5", "--warmup", "1", "--out", str(tmp_path / "bench"), "--json"])  # fmt: skip
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    rows = {r["format"]: r for r in result["rows"]}
    assert set(rows) == {
        "pytorch-eager (baseline)",
        "onnxruntime-raw (baseline)",
        "onnx",
        "openvino",
    }
    assert result["images"] == 32  # the run's test split: 4 classes x (16 - 8 train)
    # The same weights give the same predictions whichever way they run.
    top1 = {name: row["top1"] for name, row in rows.items()}
    assert top1["onnx"] == top1["onnxruntime-raw (baseline)"] == top1["pytorch-eager (baseline)"]
    for row in rows.values():
        assert row["median_ms"] > 0 and row["p90_ms"] >= row["median_ms"] * 0.999
        assert row["vs_pytorch"] == pytest.approx(
            rows["pytorch-eager (baseline)"]["median_ms"] / row["median_ms"]
        )
    assert rows["pytorch-eager (baseline)"]["vs_pytorch"] == pytest.approx(1.0)
    assert result["machine"]["cores"] >= 1
    assert (tmp_path / "bench" / "accuracy_vs_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert "| onnx |" in (tmp_path / "bench" / "benchmark.md").read_text()


def test_benchmark_rejects_what_is_not_a_run_or_export(tmp_path):
    from caltech_edge.benchmark import benchmark

    with pytest.raises(CaltechEdgeError, match="neither an export directory"):
        benchmark(tmp_path)
