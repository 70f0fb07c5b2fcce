"""Training throughput of our loop vs a plain hand-written torchvision loop, same run.

Three modes, each on the same model (ResNet-18) and the same images (a synthetic dataset
decoded through the same ``TorchImageDataset``, so data loading costs both sides alike):

* ``full``   : full fine-tune, every parameter trains;
* ``head``   : head only, frozen backbone in eval mode, images through the whole network;
* ``cached`` : head only on cached backbone features (ours: ``cache_features=True``).

"Ours" is ``caltech_edge.train.train`` end to end; its per-epoch images/s come from the
run's metrics (the training pass only; the per-epoch checkpoint, validation and test
evaluation are reported separately as wall time). The reference is the usual
``for x, y in loader: loss = ce(model(x), y); opt.zero_grad(); loss.backward(); opt.step()``.
Rounds alternate ours/reference so a busy machine slows both alike; the best epoch of
each is reported. Target: overhead <= 5%.

    python benchmarks/bench_train.py [--image-size 112] [--rounds 3] [--precision fp32]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from caltech_edge._bench import machine_info, markdown_table
from caltech_edge.config import TrainConfig
from caltech_edge.data.datasets import open_dataset
from caltech_edge.data.splits import Split
from caltech_edge.data.synth import synthesize
from caltech_edge.data.torchdata import TorchImageDataset
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.models.torchvision_zoo import create_model
from caltech_edge.train import train
from caltech_edge.train.features import split_model

REPO = Path(__file__).resolve().parents[1]


def _autocast(precision: str):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def reference_epochs(mode, run_dir, data_root, cfg, epochs) -> float:
    """Best images/s of a plain torchvision loop over the run's own training split."""
    dataset = open_dataset(data_root)
    split = Split.load(run_dir / "split.json", dataset=dataset)
    spec = PreprocessSpec(image_size=cfg.image_size)
    torch.manual_seed(0)
    model = create_model("resnet18", len(dataset.classes), weights=None)
    images = TorchImageDataset(dataset, split.train, spec)
    loader = torch.utils.data.DataLoader(images, batch_size=cfg.batch_size, shuffle=True)
    if mode == "full":
        params = model.parameters()
        net = model
    else:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in model.fc.parameters():
            p.requires_grad_(True)
        params = model.fc.parameters()
        net = model
    if mode == "cached":
        backbone, head = split_model(model, "resnet18")
        backbone.eval()
        with torch.no_grad():
            feats = [(backbone(x), y) for x, y in loader]
        x_all = torch.cat([f for f, _ in feats])
        y_all = torch.cat([y for _, y in feats])
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x_all, y_all), batch_size=cfg.batch_size, shuffle=True
        )
        net = head
    opt = torch.optim.SGD(params, lr=cfg.learning_rate, momentum=0.9, weight_decay=1e-4)
    ce = nn.CrossEntropyLoss()
    best = 0.0
    for _ in range(epochs):
        net.train()
        if mode == "head":
            model.eval()
            model.fc.train()
        seen, start = 0, time.perf_counter()
        for x, y in loader:
            with _autocast(cfg.precision.value):
                out = net(x)
            loss = ce(out.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += y.shape[0]
        best = max(best, seen / (time.perf_counter() - start))
    return best


def ours(mode, data_root, cfg, epochs, out) -> tuple[float, float, Path]:
    extra = {"full": {}, "head": {"strategy": "head"}}.get(
        mode, {"strategy": "head", "cache_features": True}
    )
    start = time.perf_counter()
    run = train(
        cfg.replace(epochs=epochs, **extra), data=data_root, out=out, resume=False, progress=False
    )
    wall = time.perf_counter() - start
    history = json.loads(run.metrics.read_text())["history"]
    return max(h["images_per_s"] for h in history), wall, run.root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--modes", default="full,head,cached")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_train.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    data_root = synthesize(
        tmp / "data", classes=args.classes, per_class=args.per_class, size=128, seed=0
    ).parent
    cfg = TrainConfig(
        arch="resnet18",
        weights="none",
        image_size=args.image_size,
        batch_size=32,
        learning_rate=0.01,
        scheduler="none",
        train_per_class=args.per_class - 8,
        test_per_class=2,
        precision=args.precision,
        seed=0,
    )
    rows, raw = [], {}
    for mode in args.modes.split(","):
        best_ours = best_ref = 0.0
        walls = []
        # head training on a cache takes milliseconds per epoch: time more epochs of it
        epochs = max(args.epochs, 20) if mode == "cached" else args.epochs
        for r in range(args.rounds):
            ips, wall, run_root = ours(mode, data_root, cfg, epochs, tmp / f"{mode}-{r}")
            walls.append(wall)
            best_ours = max(best_ours, ips)
            best_ref = max(best_ref, reference_epochs(mode, run_root, data_root, cfg, epochs))
        overhead = best_ref / best_ours - 1.0
        raw[mode] = {"ours_images_per_s": best_ours, "reference_images_per_s": best_ref,
                     "overhead": overhead, "ours_wall_seconds": walls}  # fmt: skip
        rows.append(
            {
                "mode": mode,
                "ours img/s": f"{best_ours:,.1f}",
                "plain loop img/s": f"{best_ref:,.1f}",
                "ours / plain": f"{best_ours / best_ref:.3f}",
                "overhead": f"{overhead * 100:+.1f}%",
                "ours wall s (best run)": f"{min(walls):.1f}",
            }
        )
        print(markdown_table(rows[-1:], list(rows[-1])), flush=True)
    print()
    print(markdown_table(rows, list(rows[0])))
    result = {
        "benchmark": "bench_train",
        "args": {k: str(v) for k, v in vars(args).items()},
        "rows": rows,
        "raw": raw,
        "machine": machine_info(),
        "note": "2-core machine shared with other jobs while measuring",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
