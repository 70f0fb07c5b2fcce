"""torchrun with 2 CPU processes on gloo trains a tiny job end to end (rank 0 writes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from caltech_edge.card import ModelCard


def test_torchrun_two_processes(synthetic_root, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "caltech_edge.cli",
        "train",
        "--data",
        str(synthetic_root),
        "--out",
        str(out),
        "--arch",
        "resnet18",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--train-per-class",
        "5",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    # Each rank saw its half of the 20 training images; the sums cover all of them.
    assert [h["train_images"] for h in metrics["history"]] == [20, 20]
    assert metrics["test"]["images"] == 4 * 11
    card = ModelCard.load(out / "card.json")
    assert card.num_classes == 4 and (out / "model.pt").is_file()
    assert (out / "checkpoints" / "last.pt").is_file()
    assert "resuming" not in proc.stderr
