"""Score exported artifacts on the held-out test part of a run's split (top-1, agreement).

`caltech-edge export` verifies every artifact against PyTorch on a round-robin sample of
the dataset, which mixes training and test images; this scores the same files on test
images only, so the accuracy column means what it says. The FP32 reference is an FP32
artifact of the same export (ONNX agrees with PyTorch to ~1e-5)::

    caltech-edge export RUN --to onnx,tflite,tflite-int8,executorch,executorch-int8 \\
        --data DATA --out EXP
    python benchmarks/formats_on_split.py --run RUN --data DATA --per-class 5 \\
        --fp32 EXP/onnx/model.onnx EXP/tflite-int8/model.tflite EXP/executorch-int8/model.pte

Prints a markdown table (and ``--out`` JSON): per artifact its backend, precision, top-1 on
the test images, top-1 agreement with FP32, the drop in points and the INT8 recipe kept.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from tqdm.auto import tqdm

    from caltech_edge._bench import markdown_table
    from caltech_edge._io import atomic_write_text
    from caltech_edge.compress._artifact import source_card
    from caltech_edge.data.datasets import open_dataset
    from caltech_edge.data.loader import iter_batches
    from caltech_edge.data.splits import Split
    from caltech_edge.rundir import RunDir
    from caltech_edge.runtime.backends import open_runtime

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path, help="run directory (its split.json)")
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--per-class", type=int, default=5, help="test images per class (0 = all)")
    ap.add_argument("--fp32", required=True, type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("artifacts", nargs="+", type=Path)
    args = ap.parse_args()

    card = source_card(args.fp32)
    dataset = open_dataset(args.data)
    split = Split.load(RunDir(args.run).split, dataset=dataset)
    taken: dict[int, int] = {}
    items = []
    for i in split.test:
        label = dataset.targets[i]
        if not args.per_class or taken.get(label, 0) < args.per_class:
            taken[label] = taken.get(label, 0) + 1
            items.append(i)
    x, y = next(iter_batches(dataset, items, card.preprocess, batch_size=len(items)))
    labels = np.asarray([card.class_names.index(dataset.classes[t]) for t in y])

    def predict(path: Path) -> tuple[np.ndarray, float]:
        runtime = open_runtime(path, precision_hint="f32")
        start = time.perf_counter()
        rows = [runtime.infer(x[i : i + 1]) for i in tqdm(range(len(x)), desc=path.parent.name)]
        return np.concatenate(rows).argmax(1), 1000 * (time.perf_counter() - start) / len(x)

    ref, ref_ms = predict(args.fp32)
    fp32_top1 = 100 * float((ref == labels).mean())
    rows = [_row(args.fp32, ref, ref, labels, fp32_top1, ref_ms, source_card)]
    for path in args.artifacts:
        pred, ms = predict(path)
        rows.append(_row(path, pred, ref, labels, fp32_top1, ms, source_card))
    print(f"{len(items)} test images ({args.per_class or 'all'} per class), {args.data}")
    print(markdown_table(rows, list(rows[0])))
    if args.out:
        atomic_write_text(args.out, json.dumps({"images": len(items), "rows": rows}, indent=2))


def _row(path, pred, ref, labels, fp32_top1, ms, source_card) -> dict:
    card = source_card(path)
    top1 = 100 * float((pred == labels).mean())
    return {
        "artifact": f"{path.parent.name}/{path.name}",
        "precision": card.precision,
        "top-1 %": round(top1, 2),
        "agreement %": round(100 * float((pred == ref).mean()), 2),
        "drop (pt)": round(fp32_top1 - top1, 2),
        "recipe": card.extra.get("quantization", {}).get("recipe", "-"),
        "size MB": round(sum(f.stat().st_size for f in path.parent.iterdir()) / 1e6, 2),
        "ms/image (loaded machine)": round(ms, 2),
    }


if __name__ == "__main__":
    main()
