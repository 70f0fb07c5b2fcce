"""A run killed mid-training and resumed ends with exactly the weights of an uninterrupted run.

Real processes and a real SIGKILL: the trainer runs in a subprocess (``python -m
caltech_edge.cli train``), is killed right after its first checkpoint lands, then resumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from caltech_edge.config import TrainConfig

CONFIG = TrainConfig(
    arch="squeezenet1_1",  # has dropout: resume must restore the RNG state too
    weights="none",
    image_size=32,
    epochs=3,
    batch_size=4,
    learning_rate=0.01,
    scheduler="step",
    lr_scheduler_step=(2,),
    warmup_epochs=0.5,
    augmentation="crop_color",  # per-epoch augmentation draws must line up as well
    train_per_class=12,
    seed=11,
)


def _cmd(data: Path, out: Path, cfg: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "caltech_edge.cli",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--hyperparameters",
        str(cfg),
        "--no-progress",
    ]


def _env() -> dict[str, str]:
    # One thread everywhere: identical reduction order in every process.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_resume_after_kill_matches_uninterrupted(synthetic_root, tmp_path):
    cfg = CONFIG.save(tmp_path / "config.json")
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_cmd(synthetic_root, ref, cfg), env=_env(), check=True, capture_output=True)

    proc = subprocess.Popen(
        _cmd(synthetic_root, killed, cfg),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = killed / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    interrupted_at = torch.load(last, weights_only=True)["state"]["epoch"]
    assert 1 <= interrupted_at < CONFIG.epochs
    assert (
        not (killed / "metrics.json").exists()
        or json.loads((killed / "metrics.json").read_text())["test"] is None
    )

    subprocess.run(_cmd(synthetic_root, killed, cfg), env=_env(), check=True, capture_output=True)

    a = torch.load(ref / "model.pt", weights_only=True)
    b = torch.load(killed / "model.pt", weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (ref, killed))
    for ha, hb in zip(ma["history"], mb["history"], strict=True):
        assert abs(ha["train_loss"] - hb["train_loss"]) <= 1e-6
        assert ha["lr"] == hb["lr"]
    assert ma["test"]["top1"] == mb["test"]["top1"]
    assert ma["best_epoch"] == mb["best_epoch"]
