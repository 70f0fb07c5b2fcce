"""Score INT8 artifacts made by `caltech-edge quantize` (no options) on every sample photo.

Reproduces the "Accuracy-aware INT8 with no options" table of docs/compression.md::

    caltech-edge export --checkpoint W.pth --arch squeezenet1_1 --classes W_idx_to_class.txt \
        --to onnx,openvino --out EXP
    caltech-edge quantize EXP/onnx/model.onnx --backend onnxruntime --calib-data SAMPLE --out Q1
    caltech-edge quantize EXP/openvino/model.xml --backend openvino --calib-data SAMPLE --out Q2
    python benchmarks/int8_no_flags.py --data SAMPLE --fp32 EXP/onnx/model.onnx \
        Q1/model.onnx Q2/model.xml

Prints one JSON object: top-1 of FP32 and of each artifact on all photos, top-1 agreement
with FP32, the drop in points and the recipe each artifact's card records.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    from caltech_edge.compress._artifact import source_card
    from caltech_edge.data.datasets import open_dataset
    from caltech_edge.data.loader import iter_batches
    from caltech_edge.runtime.backends import open_runtime

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--fp32", required=True, type=Path)
    ap.add_argument("artifacts", nargs="+", type=Path)
    args = ap.parse_args()
    card = source_card(args.fp32)
    ds = open_dataset(args.data)
    index = {n: i for i, n in enumerate(card.class_names)}
    mapping = np.asarray([index[c] for c in ds.classes])
    items = list(range(len(ds)))
    x, y = next(iter_batches(ds, items, card.preprocess, batch_size=len(items)))
    labels = mapping[y]

    def top1s(path: Path) -> np.ndarray:
        rt = open_runtime(path, precision_hint="f32")
        return np.concatenate([rt.infer(x[i : i + 1]) for i in range(len(x))]).argmax(1)

    ref = top1s(args.fp32)
    out = {"images": len(x), "fp32_top1": round(100 * float((ref == labels).mean()), 2)}
    for path in args.artifacts:
        pred = top1s(path)
        quant = source_card(path).extra.get("quantization", {})
        top1 = 100 * float((pred == labels).mean())
        out[str(path)] = {
            "top1": round(top1, 2),
            "agreement": round(100 * float((pred == ref).mean()), 2),
            "drop": round(out["fp32_top1"] - top1, 2),
            "recipe": quant.get("recipe"),
            "heldout_agreement": quant.get("agreement"),
            "excluded_nodes": quant.get("excluded_nodes"),
            "recipes_tried": quant.get("recipes_tried"),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
